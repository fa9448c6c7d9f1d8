//! A program: one graph compiled for a backend against a parameter store (memory plan,
//! buffers and kernels bound up front), then run as one submission per step, reading back
//! only the requested values. Its variables are the store's buffers, bound by name; it owns
//! only its inputs and the transient values and scratch of a step.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};

use kiln_core::{Backend, Bound, Error, HostTensor, Result, Role, RunCounter, Scratch, ScratchRequest, Spec};

use crate::plan::Slot;
use crate::{Graph, MemoryPlan, Store, Value};

pub struct Program<B: Backend> {
    backend: B,
    store: u64,
    graph: Graph,
    plan: MemoryPlan,
    buffers: Vec<B::Buffer>,
    /// Prepared kernels in schedule order, and the node each one computes.
    kernels: Vec<B::Kernel>,
    kernel_nodes: Vec<usize>,
    /// Kernels whose attributes advance every run, each with the store counter it reads.
    counted: Vec<(usize, String)>,
    /// The counters a run advances, each once.
    counters: Vec<String>,
    /// Values that can be read after a run: pinned outputs and sources.
    readable: Vec<bool>,
    /// For each source feeding index inputs (labels, ids): the consuming op and its bound.
    index_bounds: HashMap<usize, Vec<(&'static str, usize)>>,
    /// Which inputs have been set: a run with an input never set that it reads is refused.
    fed: Vec<Cell<bool>>,
    /// The values a run reads: outputs, and inputs of its kernels (through views).
    read: Vec<bool>,
}

impl<B: Backend> Program<B> {
    /// Binds the graph's variables to `store` (creating those it lacks from their initial
    /// contents, or zeros; refusing one it holds with another shape), fuses what `fuse` fuses
    /// (unless `KILN_FUSE=off`), plans memory, allocates the program's buffers and prepares
    /// every kernel.
    pub fn compile(store: &mut Store<B>, graph: &Graph, outputs: &[Value]) -> Result<Self> {
        if crate::fusion_enabled()? {
            Self::compile_unfused(store, &crate::fuse(graph, outputs), outputs)
        } else {
            Self::compile_unfused(store, graph, outputs)
        }
    }

    /// `compile` with every node of `graph` its own kernel, as written.
    pub fn compile_unfused(store: &mut Store<B>, graph: &Graph, outputs: &[Value]) -> Result<Self> {
        for (i, node) in graph.nodes().iter().enumerate() {
            node.shape.check_size(&format!("node {i} ({} `{}`)", node.op.name(), node.name))?;
        }
        for node in graph.nodes().iter().filter(|n| n.op.role() == Role::Variable) {
            store.declare(&node.name, &node.shape, node.dtype, node.init.as_ref())?;
        }
        let backend = store.backend();
        let scratch = scratch_requests(backend, graph)?;
        let plan = MemoryPlan::with_scratch(graph, outputs, &scratch, &|bytes| backend.allocation_bytes(bytes));
        let buffers = plan
            .sizes
            .iter()
            .enumerate()
            .map(|(i, &bytes)| backend.alloc(bytes, &format!("kiln buffer {i}")))
            .collect::<Result<Vec<_>>>()?;
        let mut readable = vec![false; graph.nodes().len()];
        for v in outputs {
            readable[v.0] = true;
        }
        let mut program = Program {
            backend: backend.clone(),
            store: store.id(),
            graph: graph.clone(),
            plan,
            buffers,
            kernels: vec![],
            kernel_nodes: vec![],
            counted: vec![],
            counters: vec![],
            readable,
            index_bounds: index_bounds(graph),
            fed: vec![Cell::new(false); graph.nodes().len()],
            read: vec![],
        };
        program.read = read_values(graph, outputs, &program.plan.live);
        program.prepare_all(store)?;
        log::debug!(
            "compiled {} kernels on {}: {} bytes of program buffers (inputs {}, peak step values and scratch {}), \
             store {} bytes",
            program.kernels.len(),
            backend.name(),
            program.plan.program_bytes,
            program.plan.input_bytes,
            program.plan.peak_step_bytes,
            store.bytes()
        );
        Ok(program)
    }

    fn prepare_all(&mut self, store: &Store<B>) -> Result<()> {
        let mut counters = BTreeSet::new();
        for (i, node) in self.graph.nodes().iter().enumerate() {
            if !self.plan.live[i] || self.plan.elided[i] {
                continue;
            }
            match node.op.role() {
                Role::Input | Role::Variable => self.readable[i] = true,
                Role::View => {}
                Role::Kernel => {
                    if let Some((counter, _)) = node.op.at_run(0) {
                        let name = counter_name(&self.graph, i, counter);
                        counters.insert(name.clone());
                        self.counted.push((self.kernels.len(), name));
                    }
                    let kernel = self.prepare(store, i)?;
                    self.kernels.push(kernel);
                    self.kernel_nodes.push(i);
                }
            }
        }
        self.counters = counters.into_iter().collect();
        Ok(())
    }

    fn prepare(&self, store: &Store<B>, index: usize) -> Result<B::Kernel> {
        let node = &self.graph.nodes()[index];
        let bound = |v: Value| -> Result<Bound<'_, B::Buffer>> {
            let n = self.graph.node(v);
            Ok(Bound { buffer: self.buffer(store, v)?, shape: &n.shape, dtype: n.dtype })
        };
        let inputs = node.inputs.iter().map(|&v| bound(v)).collect::<Result<Vec<_>>>()?;
        let outputs = match node.op.updated_inputs() {
            [] => vec![bound(Value(index))?],
            updated => updated.iter().map(|&i| bound(node.inputs[i])).collect::<Result<Vec<_>>>()?,
        };
        let buffers = self.plan.scratch[index].iter().map(|&b| &self.buffers[b]);
        let filled = self.plan.scratch_filled[index].iter().copied();
        let scratch: Vec<Scratch<'_, B::Buffer>> =
            buffers.zip(filled).map(|(buffer, filled)| Scratch { buffer, filled }).collect();
        self.backend.prepare(&node.op, &inputs, &outputs, &scratch)
    }

    fn buffer<'a>(&'a self, store: &'a Store<B>, v: Value) -> Result<&'a B::Buffer> {
        match &self.plan.storage[v.0] {
            Some(Slot::Buffer(b)) => Ok(&self.buffers[*b]),
            Some(Slot::Store(name)) => store.buffer(name),
            None => Err(Error::attribute(self.graph.node(v).op.name(), "an in-place update has no value of its own")),
        }
    }

    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The store counters a run of this program advances (one per updated parameter and per
    /// dropout layer).
    pub fn counters(&self) -> &[String] {
        &self.counters
    }

    /// Writes `tensor` into an input, checking shape, dtype and index ranges.
    pub fn set(&self, v: Value, tensor: &HostTensor) -> Result<()> {
        let node = self.graph.node(v);
        let why = match node.op.role() {
            Role::Input => None,
            Role::Variable => Some("it lives in the parameter store: write it with Store::write"),
            Role::View | Role::Kernel => Some("only inputs are fed"),
        };
        if let Some(why) = why {
            let what = format!("node {} ({})", v.0, node.op.name());
            return Err(Error::NotSettable { what, name: node.name.clone(), why: why.into() });
        }
        check_tensor(&node.name, node, tensor)?;
        self.check_indices(v, tensor)?;
        let Some(Slot::Buffer(b)) = &self.plan.storage[v.0] else {
            return Err(Error::attribute("set", format!("input `{}` has no buffer", node.name)));
        };
        self.fed[v.0].set(true);
        self.backend.write(&self.buffers[*b], &tensor.to_bytes())
    }

    /// Sets inputs by name.
    pub fn feed(&self, inputs: &HashMap<&str, &HostTensor>) -> Result<()> {
        for (i, node) in self.graph.nodes().iter().enumerate() {
            if let Some(tensor) = inputs.get(node.name.as_str()).filter(|_| node.op.role() == Role::Input) {
                self.set(Value(i), tensor)?;
            }
        }
        Ok(())
    }

    /// Refuses labels or ids outside the range of an op that indexes with them, naming both.
    fn check_indices(&self, v: Value, tensor: &HostTensor) -> Result<()> {
        let Some(bounds) = self.index_bounds.get(&v.0) else { return Ok(()) };
        let values = tensor.as_i32()?;
        for &(op, bound) in bounds {
            if let Some(bad) = values.iter().find(|&&i| i < 0 || i as usize >= bound) {
                let name = &self.graph.node(v).name;
                return Err(Error::attribute(op, format!("index {bad} in `{name}` is out of range 0..{bound}")));
            }
        }
        Ok(())
    }

    /// Runs one step (every kernel: forward, backward, updates) over `store` as one
    /// submission, advances the store counters of its updates and dropout layers, and returns
    /// the values of `reads`, which must be outputs or sources.
    pub fn run(&self, store: &mut Store<B>, reads: &[Value]) -> Result<Vec<HostTensor>> {
        self.ready(store)?;
        let requests = reads.iter().map(|&v| self.read_request(store, v)).collect::<Result<Vec<_>>>()?;
        let bytes = self.backend.run(&self.kernels, &requests)?;
        self.advance(store);
        reads.iter().zip(bytes).map(|(&v, b)| self.decode(v, &b)).collect()
    }

    /// `run` for a host where nothing may block (a browser's page): the same step, awaited.
    pub async fn run_async(&self, store: &mut Store<B>, reads: &[Value]) -> Result<Vec<HostTensor>> {
        self.ready(store)?;
        let requests = reads.iter().map(|&v| self.read_request(store, v)).collect::<Result<Vec<_>>>()?;
        let pending = self.backend.run_async(&self.kernels, &requests)?;
        let bytes = pending.await?;
        self.advance(store);
        reads.iter().zip(bytes).map(|(&v, b)| self.decode(v, &b)).collect()
    }

    /// Runs one step like `run` (reading nothing back), with every dispatch timed: one entry
    /// per dispatch, naming the graph node it computes.
    pub fn profile(&self, store: &mut Store<B>) -> Result<StepProfile> {
        self.ready(store)?;
        let timing = self.backend.profile(&self.kernels)?;
        self.advance(store);
        let mut dispatches = Vec::new();
        for (&node, timed) in self.kernel_nodes.iter().zip(timing.kernels) {
            for (label, seconds) in timed {
                dispatches.push(DispatchTime { node, op: self.graph.nodes()[node].op.name(), label, seconds });
            }
        }
        Ok(StepProfile { dispatches, timer: timing.timer, wall_seconds: timing.wall_seconds })
    }

    /// Checks the store and the inputs, and brings every per-run attribute (optimizer steps,
    /// dropout masks) to the store's counters.
    fn ready(&self, store: &Store<B>) -> Result<()> {
        if store.id() != self.store {
            return Err(Error::WrongStore { compiled: self.store, given: store.id() });
        }
        let unfed = self
            .graph
            .nodes()
            .iter()
            .enumerate()
            .find(|(i, n)| n.op.role() == Role::Input && self.read[*i] && !self.fed[*i].get());
        if let Some((_, node)) = unfed {
            return Err(Error::InputNotSet { input: node.name.clone() });
        }
        for (kernel, counter) in &self.counted {
            let node = &self.graph.nodes()[self.kernel_nodes[*kernel]];
            if let Some((_, op)) = node.op.at_run(store.counter(counter)) {
                self.backend.refresh(&self.kernels[*kernel], &op)?;
            }
        }
        Ok(())
    }

    fn advance(&self, store: &mut Store<B>) {
        for counter in &self.counters {
            store.advance(counter);
        }
    }

    /// Reads values without running anything: sources, or outputs of the last run.
    pub fn read(&self, store: &Store<B>, reads: &[Value]) -> Result<Vec<HostTensor>> {
        if store.id() != self.store {
            return Err(Error::WrongStore { compiled: self.store, given: store.id() });
        }
        let requests = reads.iter().map(|&v| self.read_request(store, v)).collect::<Result<Vec<_>>>()?;
        let bytes = self.backend.run(&[], &requests)?;
        reads.iter().zip(bytes).map(|(&v, b)| self.decode(v, &b)).collect()
    }

    fn read_request<'a>(&'a self, store: &'a Store<B>, v: Value) -> Result<(&'a B::Buffer, u64)> {
        let node = self.graph.nodes().get(v.0).ok_or_else(|| Error::NotAnOutput { node: v.0, op: "none".into() })?;
        if !self.readable[v.0] {
            return Err(Error::NotAnOutput { node: v.0, op: node.op.name().into() });
        }
        Ok((self.buffer(store, v)?, node.shape.bytes()))
    }

    fn decode(&self, v: Value, bytes: &[u8]) -> Result<HostTensor> {
        let node = self.graph.node(v);
        HostTensor::from_bytes(node.shape.clone(), node.dtype, bytes)
    }
}

/// The values a run of the program reads: its outputs, and what its live kernels read,
/// directly or through views.
fn read_values(graph: &Graph, outputs: &[Value], live: &[bool]) -> Vec<bool> {
    let mut read = vec![false; graph.nodes().len()];
    for v in outputs {
        read[v.0] = true;
    }
    for (i, node) in graph.nodes().iter().enumerate().rev() {
        let reads_inputs = match node.op.role() {
            Role::Kernel => live[i],
            Role::View => read[i],
            Role::Input | Role::Variable => false,
        };
        if reads_inputs {
            for v in &node.inputs {
                read[v.0] = true;
            }
        }
    }
    read
}

/// The counter a node with per-run attributes reads: `<parameter>.step` for an update,
/// `dropout.<seed>.step` for a dropout layer.
fn counter_name(graph: &Graph, node: usize, counter: RunCounter) -> String {
    match counter {
        RunCounter::Parameter => format!("{}.step", graph.node(graph.nodes()[node].inputs[0]).name),
        RunCounter::Dropout { seed } => format!("dropout.{seed:08x}.step"),
        RunCounter::Noise { seed } => format!("noise.{seed:08x}.step"),
    }
}

/// The scratch each live kernel asks its backend for.
fn scratch_requests<B: Backend>(backend: &B, graph: &Graph) -> Result<Vec<Vec<ScratchRequest>>> {
    let spec = |v: &Value| Spec { shape: graph.shape(*v), dtype: graph.node(*v).dtype };
    graph
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, node)| match node.op.role() {
            Role::Input | Role::Variable | Role::View => Ok(vec![]),
            Role::Kernel => {
                let inputs: Vec<Spec<'_>> = node.inputs.iter().map(spec).collect();
                let outputs: Vec<Spec<'_>> = match node.op.updated_inputs() {
                    [] => vec![spec(&Value(i))],
                    updated => updated.iter().map(|&u| spec(&node.inputs[u])).collect(),
                };
                backend.scratch(&node.op, &inputs, &outputs)
            }
        })
        .collect()
}

fn check_tensor(name: &str, node: &crate::Node, tensor: &HostTensor) -> Result<()> {
    if tensor.shape != node.shape || tensor.dtype() != node.dtype {
        let want = format!("{:?} {}", node.dtype, node.shape);
        let got = format!("{:?} {}", tensor.dtype(), tensor.shape);
        return Err(Error::shape(&format!("set `{name}`"), "wrong tensor", want, got));
    }
    Ok(())
}

/// Sources consumed as index inputs, with each consumer's name and exclusive bound.
fn index_bounds(graph: &Graph) -> HashMap<usize, Vec<(&'static str, usize)>> {
    let mut bounds: HashMap<usize, Vec<(&'static str, usize)>> = HashMap::new();
    for node in graph.nodes() {
        let shapes: Vec<_> = node.inputs.iter().map(|v| graph.shape(*v)).collect();
        if let (Some(input), Some(bound)) = (node.op.index_input(), node.op.index_bound(&shapes)) {
            bounds.entry(node.inputs[input].0).or_default().push((node.op.name(), bound));
        }
    }
    bounds
}

/// One dispatch of a profiled step.
#[derive(Clone, Debug)]
pub struct DispatchTime {
    /// The graph node it computes, and that node's op.
    pub node: usize,
    pub op: &'static str,
    /// The kernel (entry point) it ran.
    pub label: String,
    pub seconds: f64,
}

/// Every dispatch of one step with its time, how they were timed, and the step's wall time.
#[derive(Clone, Debug)]
pub struct StepProfile {
    pub dispatches: Vec<DispatchTime>,
    pub timer: String,
    pub wall_seconds: f64,
}

//! Compiles a graph once for a backend (memory plan, buffers, kernels bound up front), then runs
//! every step as one submission, reading back only the requested values.

use std::cell::Cell;
use std::collections::HashMap;

use kiln_core::{Backend, Bound, Error, HostTensor, Op, Result};

use crate::{Graph, MemoryPlan, Value};

pub struct Executor<B: Backend> {
    backend: B,
    graph: Graph,
    plan: MemoryPlan,
    buffers: Vec<B::Buffer>,
    /// Prepared kernels in schedule order, and the node each one computes.
    kernels: Vec<B::Kernel>,
    kernel_nodes: Vec<usize>,
    /// Values whose buffers stay valid after a run: pinned outputs and sources.
    readable: Vec<bool>,
    /// For each source feeding index inputs (labels, ids): the consuming op and its bound.
    index_bounds: HashMap<usize, Vec<(&'static str, usize)>>,
    /// Which inputs have been set: a run with an input never set is refused.
    fed: Vec<Cell<bool>>,
    runs: u32,
}

impl<B: Backend> Executor<B> {
    /// Plans memory, allocates buffers, writes initial variables and prepares every kernel.
    pub fn compile(backend: B, graph: &Graph, outputs: &[Value]) -> Result<Self> {
        let plan = MemoryPlan::new(graph, outputs);
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
        let mut exec = Executor {
            backend,
            graph: graph.clone(),
            plan,
            buffers,
            kernels: vec![],
            kernel_nodes: vec![],
            readable,
            index_bounds: index_bounds(graph),
            fed: vec![Cell::new(false); graph.nodes().len()],
            runs: 0,
        };
        exec.prepare_all()?;
        log::debug!(
            "compiled {} kernels on {}: {} persistent bytes, peak {} step bytes",
            exec.kernels.len(),
            exec.backend.name(),
            exec.plan.persistent_bytes,
            exec.plan.peak_step_bytes
        );
        Ok(exec)
    }

    fn prepare_all(&mut self) -> Result<()> {
        for (i, node) in self.graph.nodes().iter().enumerate() {
            match &node.op {
                _ if !self.plan.live[i] => {}
                Op::Input | Op::Variable => {
                    self.readable[i] = true;
                    // Pooled buffers hold whatever their last user left: variables start
                    // from their initial contents, or zeros.
                    let zeros = || vec![0u8; node.shape.bytes() as usize];
                    let bytes = node.init.as_ref().map_or_else(zeros, |init| init.to_bytes());
                    if node.op == Op::Variable {
                        self.backend.write(self.buffer(Value(i))?, &bytes)?;
                    }
                }
                Op::Reshape(_) => {}
                op => {
                    let kernel = self.prepare(i, op)?;
                    self.kernels.push(kernel);
                    self.kernel_nodes.push(i);
                }
            }
        }
        Ok(())
    }

    fn prepare(&self, index: usize, op: &Op) -> Result<B::Kernel> {
        let node = &self.graph.nodes()[index];
        let bound = |v: Value| -> Result<Bound<'_, B::Buffer>> {
            let n = self.graph.node(v);
            Ok(Bound { buffer: self.buffer(v)?, shape: &n.shape, dtype: n.dtype })
        };
        let inputs = node.inputs.iter().map(|&v| bound(v)).collect::<Result<Vec<_>>>()?;
        let outputs = match op.updated_inputs() {
            [] => vec![bound(Value(index))?],
            updated => updated.iter().map(|&i| bound(node.inputs[i])).collect::<Result<Vec<_>>>()?,
        };
        self.backend.prepare(op, &inputs, &outputs)
    }

    fn buffer(&self, v: Value) -> Result<&B::Buffer> {
        let storage = self.plan.storage[v.0].ok_or_else(|| {
            Error::attribute(self.graph.node(v).op.name(), "an in-place update has no value of its own")
        })?;
        Ok(&self.buffers[storage])
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Writes `tensor` into a source (an input or a variable), checking shape and dtype.
    pub fn set(&self, v: Value, tensor: &HostTensor) -> Result<()> {
        let node = self.graph.node(v);
        if !matches!(node.op, Op::Input | Op::Variable) {
            return Err(Error::attribute(node.op.name(), "only inputs and variables can be set"));
        }
        if tensor.shape != node.shape || tensor.dtype() != node.dtype {
            let want = format!("{:?} {}", node.dtype, node.shape);
            let got = format!("{:?} {}", tensor.dtype(), tensor.shape);
            return Err(Error::shape(&format!("set `{}`", node.name), "wrong tensor", want, got));
        }
        self.check_indices(v, tensor)?;
        self.fed[v.0].set(true);
        self.backend.write(self.buffer(v)?, &tensor.to_bytes())
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

    /// Sets inputs by name.
    pub fn feed(&self, inputs: &HashMap<&str, &HostTensor>) -> Result<()> {
        for (i, node) in self.graph.nodes().iter().enumerate() {
            if let Some(tensor) = inputs.get(node.name.as_str()).filter(|_| node.op == Op::Input) {
                self.set(Value(i), tensor)?;
            }
        }
        Ok(())
    }

    /// Runs one step (forward, backward and updates: every kernel) as one submission and
    /// returns the values of `reads`, which must have been listed as outputs or be sources.
    pub fn run(&mut self, reads: &[Value]) -> Result<Vec<HostTensor>> {
        let unfed = self
            .graph
            .nodes()
            .iter()
            .enumerate()
            .find(|(i, n)| n.op == Op::Input && self.plan.live[*i] && !self.fed[*i].get());
        if let Some((_, node)) = unfed {
            return Err(Error::attribute("run", format!("input `{}` was never set", node.name)));
        }
        if self.runs > 0 {
            self.refresh_step_attributes()?;
        }
        let requests = reads.iter().map(|&v| self.read_request(v)).collect::<Result<Vec<_>>>()?;
        let bytes = self.backend.run(&self.kernels, &requests)?;
        self.runs += 1;
        reads.iter().zip(bytes).map(|(&v, b)| self.decode(v, &b)).collect()
    }

    /// Runs one step like `run` (reading nothing back), with every dispatch timed: one entry
    /// per dispatch, naming the graph node it computes.
    pub fn profile(&mut self) -> Result<StepProfile> {
        if self.runs > 0 {
            self.refresh_step_attributes()?;
        }
        let timing = self.backend.profile(&self.kernels)?;
        self.runs += 1;
        let mut dispatches = Vec::new();
        for (&node, timed) in self.kernel_nodes.iter().zip(timing.kernels) {
            for (label, seconds) in timed {
                dispatches.push(DispatchTime { node, op: self.graph.nodes()[node].op.name(), label, seconds });
            }
        }
        Ok(StepProfile { dispatches, timer: timing.timer, wall_seconds: timing.wall_seconds })
    }

    /// Runs so far: the step counts and dropout masks of the next run follow from it.
    pub fn runs(&self) -> u32 {
        self.runs
    }

    /// Continues as if `runs` runs had happened (resuming from a checkpoint).
    pub fn resume_at(&mut self, runs: u32) {
        self.runs = runs;
    }

    /// Reads values without running anything (parameters after training, say).
    pub fn read(&self, reads: &[Value]) -> Result<Vec<HostTensor>> {
        let requests = reads.iter().map(|&v| self.read_request(v)).collect::<Result<Vec<_>>>()?;
        let bytes = self.backend.run(&[], &requests)?;
        reads.iter().zip(bytes).map(|(&v, b)| self.decode(v, &b)).collect()
    }

    fn read_request(&self, v: Value) -> Result<(&B::Buffer, u64)> {
        let node = self.graph.node(v);
        if !self.readable.get(v.0).copied().unwrap_or(false) {
            return Err(Error::attribute(node.op.name(), format!("node {} was not compiled as an output", v.0)));
        }
        Ok((self.buffer(v)?, node.shape.bytes()))
    }

    fn decode(&self, v: Value, bytes: &[u8]) -> Result<HostTensor> {
        let node = self.graph.node(v);
        HostTensor::from_bytes(node.shape.clone(), node.dtype, bytes)
    }

    /// Advances the attributes that change every run (step counts, schedules, dropout masks).
    fn refresh_step_attributes(&self) -> Result<()> {
        for (kernel, &index) in self.kernels.iter().zip(&self.kernel_nodes) {
            if let Some(op) = self.graph.nodes()[index].op.at_run(self.runs) {
                self.backend.refresh(kernel, &op)?;
            }
        }
        Ok(())
    }
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

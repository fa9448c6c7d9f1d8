//! Memory plan: which nodes run and where each value lives. Only nodes that requested outputs
//! or in-place updates depend on run (gradients nobody reads are pruned). Variables live in
//! the parameter store; inputs get buffers of their own; a reshape shares its input's; an
//! in-place update writes its inputs'; every other value, and every kernel's scratch, takes a
//! free buffer whose last reader has already run, so buffers are reused by liveness. The
//! buffers listed are exactly what a program allocates.

use std::collections::HashMap;

use kiln_core::{Op, Role, ScratchRequest};

use crate::{Graph, Value};

/// Where a value lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// A buffer of the program (an index into `MemoryPlan::sizes`).
    Buffer(usize),
    /// A variable of the parameter store, by name.
    Store(String),
}

#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// Whether each node runs: sources, and whatever the outputs and updates depend on.
    pub live: Vec<bool>,
    /// Where each node's value lives (`None` for in-place updates and pruned nodes).
    pub storage: Vec<Option<Slot>>,
    /// The buffers of each node's kernel scratch, in the order its backend asked for them.
    pub scratch: Vec<Vec<usize>>,
    /// For each of those, whether an earlier kernel fills it (a shared request, see
    /// `ScratchRequest::derived_from`) and nothing changes its source in between.
    pub scratch_filled: Vec<Vec<bool>>,
    /// Assignments that need no kernel: their value was computed straight into the variable.
    pub elided: Vec<bool>,
    /// Allocated size in bytes of each program buffer.
    pub sizes: Vec<u64>,
    /// Bytes of the input buffers (fed before each run).
    pub input_bytes: u64,
    /// Bytes of every program buffer (inputs, values, scratch): what the program allocates.
    pub program_bytes: u64,
    /// Largest sum of step buffers (values and scratch) live at any point of the schedule:
    /// no assignment of buffers can need less.
    pub peak_step_bytes: u64,
}

/// A step value or a kernel's scratch, live from node `start` to node `end`, both included.
#[derive(Clone, Copy, Debug)]
struct Interval {
    start: usize,
    end: usize,
    bytes: u64,
}

impl Interval {
    fn overlaps(&self, other: &Interval) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// Buffers for `intervals`, offline: the largest interval first, each into the smallest
/// buffer holding no interval it overlaps, else into a new buffer of its size ("greedy by
/// size"). Returns each interval's buffer and each buffer's bytes.
fn share_buffers(intervals: &[Interval]) -> (Vec<usize>, Vec<u64>) {
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(intervals[i].bytes), intervals[i].start));
    let mut sizes: Vec<u64> = Vec::new();
    let mut occupants: Vec<Vec<usize>> = Vec::new();
    let mut buffer_of = vec![0; intervals.len()];
    for i in order {
        let free = |b: &usize| occupants[*b].iter().all(|&o| !intervals[o].overlaps(&intervals[i]));
        let buffer = match (0..sizes.len()).filter(free).min_by_key(|&b| sizes[b]) {
            Some(b) => b,
            None => {
                sizes.push(intervals[i].bytes);
                occupants.push(Vec::new());
                sizes.len() - 1
            }
        };
        occupants[buffer].push(i);
        buffer_of[i] = buffer;
    }
    (buffer_of, sizes)
}

/// The largest sum of bytes of intervals live at one node.
fn peak(intervals: &[Interval], nodes: usize) -> u64 {
    let mut change = vec![0i128; nodes + 2];
    for interval in intervals {
        change[interval.start] += i128::from(interval.bytes);
        change[interval.end + 1] -= i128::from(interval.bytes);
    }
    let mut live = 0i128;
    change
        .iter()
        .map(|c| {
            live += c;
            live
        })
        .max()
        .map_or(0, |p| p as u64)
}

impl MemoryPlan {
    /// Plans `graph` with no kernel scratch, each buffer taking exactly its bytes.
    pub fn new(graph: &Graph, pinned: &[Value]) -> Self {
        Self::with_scratch(graph, pinned, &vec![vec![]; graph.nodes().len()], &|bytes| bytes)
    }

    /// Plans `graph`, keeping `pinned` values intact until the end so they can be read back;
    /// `scratch[i]` lists the scratch buffers node i's kernel needs, and `allocation` gives
    /// the bytes a request actually takes on the device. A request derived from an input
    /// shares the buffer of an earlier one with the same key and the same input value, live
    /// from the first to the last, unless an update in place changes that value in between.
    pub fn with_scratch(
        graph: &Graph,
        pinned: &[Value],
        scratch: &[Vec<ScratchRequest>],
        allocation: &dyn Fn(u64) -> u64,
    ) -> Self {
        let nodes = graph.nodes();
        let live = live_nodes(graph, pinned);
        let (elided, redirected) = elided_assignments(graph, pinned, &live);
        let last_use = last_uses(graph, pinned, &live);
        let mut plan = MemoryPlan {
            storage: vec![None; nodes.len()],
            scratch: vec![vec![]; nodes.len()],
            scratch_filled: vec![vec![]; nodes.len()],
            elided,
            sizes: vec![],
            input_bytes: 0,
            program_bytes: 0,
            peak_step_bytes: 0,
            live: live.clone(),
        };
        // Inputs first, a buffer each; then the step values and scratch, shared by liveness.
        let mut input_sizes = Vec::new();
        let mut intervals = Vec::new();
        let mut values: Vec<(usize, usize)> = Vec::new();
        let mut scratch_of: Vec<(usize, usize)> = Vec::new();
        // The interval of each derived scratch buffer, by source value and key.
        let mut derived: HashMap<(usize, &str), usize> = HashMap::new();
        let updated_between = |value: usize, from: usize, to: usize| {
            (from + 1..to)
                .any(|k| live[k] && nodes[k].op.updated_inputs().iter().any(|&u| nodes[k].inputs[u].0 == value))
        };
        for (i, node) in nodes.iter().enumerate() {
            let bytes = node.shape.bytes().max(4);
            plan.storage[i] = match (node.op.role(), &redirected[i]) {
                _ if !live[i] => None,
                (_, Some(variable)) => Some(Slot::Store(variable.clone())),
                (Role::Input, None) => {
                    input_sizes.push(bytes);
                    Some(Slot::Buffer(input_sizes.len() - 1))
                }
                (Role::Variable, None) => Some(Slot::Store(node.name.clone())),
                (Role::View, None) => plan.storage[node.inputs[0].0].clone(),
                (Role::Kernel, None) if !node.op.updated_inputs().is_empty() => None,
                (Role::Kernel, None) => {
                    values.push((i, intervals.len()));
                    intervals.push(Interval { start: i, end: last_use[i], bytes });
                    None
                }
            };
            if live[i] && !plan.elided[i] {
                for request in &scratch[i] {
                    // A request naming an input the node lacks is planned as the kernel's own.
                    let source = request
                        .derived_from
                        .as_ref()
                        .and_then(|(input, key)| Some((node.inputs.get(*input)?.0, key.as_str())));
                    let earlier = source.and_then(|source| derived.get(&source).copied());
                    match (source, earlier) {
                        (Some((value, _)), Some(shared)) if !updated_between(value, intervals[shared].start, i) => {
                            intervals[shared].end = i;
                            scratch_of.push((i, shared));
                            plan.scratch_filled[i].push(true);
                        }
                        _ => {
                            if let Some(source) = source {
                                derived.insert(source, intervals.len());
                            }
                            scratch_of.push((i, intervals.len()));
                            intervals.push(Interval { start: i, end: i, bytes: request.bytes.max(4) });
                            plan.scratch_filled[i].push(false);
                        }
                    }
                }
            }
        }
        let (buffer_of, shared_sizes) = share_buffers(&intervals);
        let first_shared = input_sizes.len();
        for (node, interval) in values {
            plan.storage[node] = Some(Slot::Buffer(first_shared + buffer_of[interval]));
        }
        // Reshapes share the buffer of the value they view, placed only now.
        for (i, node) in nodes.iter().enumerate() {
            if live[i] && node.op.role() == Role::View && redirected[i].is_none() {
                plan.storage[i] = plan.storage[node.inputs[0].0].clone();
            }
        }
        for (node, interval) in scratch_of {
            plan.scratch[node].push(first_shared + buffer_of[interval]);
        }
        plan.peak_step_bytes = peak(&intervals, nodes.len());
        plan.sizes = input_sizes.iter().chain(&shared_sizes).map(|&b| allocation(b)).collect();
        plan.input_bytes = plan.sizes[..first_shared].iter().sum();
        plan.program_bytes = plan.sizes.iter().sum();
        plan
    }
}

/// Sources, pinned values, in-place updates, and every node they depend on.
fn live_nodes(graph: &Graph, pinned: &[Value]) -> Vec<bool> {
    let nodes = graph.nodes();
    let source = |n: &crate::graph::Node| matches!(n.op.role(), Role::Input | Role::Variable);
    let mut live: Vec<bool> = nodes.iter().map(|n| source(n) || !n.op.updated_inputs().is_empty()).collect();
    for v in pinned {
        live[v.0] = true;
    }
    for i in (0..nodes.len()).rev() {
        if live[i] {
            for v in &nodes[i].inputs {
                live[v.0] = true;
            }
        }
    }
    live
}

/// Assignments whose value can be computed straight into the variable, sparing a copy: the
/// value's node computes nothing else anyone reads (its only reader is the assignment, and
/// it is not pinned), no other node reads the variable, and nothing else assigns it. Returns
/// which assignments are elided and, for each node, the variable its value goes to instead.
fn elided_assignments(graph: &Graph, pinned: &[Value], live: &[bool]) -> (Vec<bool>, Vec<Option<String>>) {
    let nodes = graph.nodes();
    let mut readers = vec![0usize; nodes.len()];
    for node in nodes.iter().enumerate().filter(|(i, _)| live[*i]).map(|(_, n)| n) {
        for v in &node.inputs {
            readers[v.0] += 1;
        }
    }
    let assigned = |variable: Value| nodes.iter().filter(|n| n.op == Op::Assign && n.inputs[0] == variable).count();
    let mut elided = vec![false; nodes.len()];
    let mut redirected = vec![None; nodes.len()];
    for (i, node) in nodes.iter().enumerate().filter(|(i, n)| live[*i] && n.op == Op::Assign) {
        let (variable, value) = (node.inputs[0], node.inputs[1]);
        let producer = &nodes[value.0];
        let computes = producer.op.role() == Role::Kernel && producer.op.updated_inputs().is_empty();
        let elidable = computes
            && readers[value.0] == 1
            && !pinned.contains(&value)
            && readers[variable.0] == 1
            && assigned(variable) == 1;
        if elidable {
            elided[i] = true;
            redirected[value.0] = Some(nodes[variable.0].name.clone());
        }
    }
    (elided, redirected)
}

/// Index of the last live node reading each node's buffer (through reshapes); pinned values
/// and values no node reads are kept to the end so reads and unread outputs stay valid.
fn last_uses(graph: &Graph, pinned: &[Value], live: &[bool]) -> Vec<usize> {
    let nodes = graph.nodes();
    let end = nodes.len();
    // The node that owns the buffer of each value (reshapes forward to their input's owner).
    let mut owner: Vec<usize> = (0..end).collect();
    for (i, node) in nodes.iter().enumerate() {
        if node.op.role() == Role::View {
            owner[i] = owner[node.inputs[0].0];
        }
    }
    let mut last = vec![0usize; end];
    for (i, node) in nodes.iter().enumerate().filter(|(i, _)| live[*i]) {
        for v in &node.inputs {
            last[owner[v.0]] = last[owner[v.0]].max(i);
        }
    }
    for v in pinned {
        last[owner[v.0]] = end;
    }
    for (i, l) in last.iter_mut().enumerate() {
        if *l < i {
            *l = end;
        }
    }
    last
}

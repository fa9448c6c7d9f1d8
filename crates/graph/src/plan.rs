//! Memory plan: which nodes run and which buffer holds each value. Only nodes that requested
//! outputs or in-place updates depend on run (gradients nobody reads are pruned). Sources get
//! their own buffers; a reshape shares its input's; an in-place update writes its inputs';
//! every other value takes a free buffer whose last reader has already run, so buffers are
//! reused by liveness.

use kiln_core::Op;

use crate::{Graph, Value};

#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// Whether each node runs: sources, and whatever the outputs and updates depend on.
    pub live: Vec<bool>,
    /// Buffer index of each node's value (`None` for in-place updates and pruned nodes).
    pub storage: Vec<Option<usize>>,
    /// Size in bytes of each buffer.
    pub sizes: Vec<u64>,
    /// Bytes of persistent buffers (inputs and variables).
    pub persistent_bytes: u64,
    /// Largest sum of live step buffers at any point of the schedule.
    pub peak_step_bytes: u64,
}

impl MemoryPlan {
    /// Plans `graph`, keeping `pinned` values intact until the end so they can be read back.
    pub fn new(graph: &Graph, pinned: &[Value]) -> Self {
        let nodes = graph.nodes();
        let live = live_nodes(graph, pinned);
        let mut plan = MemoryPlan {
            storage: vec![None; nodes.len()],
            sizes: vec![],
            persistent_bytes: 0,
            peak_step_bytes: 0,
            live: live.clone(),
        };
        let last_use = last_uses(graph, pinned, &live);
        let mut free: Vec<usize> = Vec::new();
        let mut live_bytes = 0u64;
        let mut releases: Vec<Vec<usize>> = vec![Vec::new(); nodes.len() + 1];
        for (i, node) in nodes.iter().enumerate() {
            let bytes = node.shape.bytes().max(4);
            plan.storage[i] = match &node.op {
                _ if !live[i] => None,
                Op::Input | Op::Variable => {
                    plan.persistent_bytes += bytes;
                    Some(plan.push(bytes))
                }
                Op::Reshape(_) => plan.storage[node.inputs[0].0],
                op if !op.updated_inputs().is_empty() => None,
                _ => {
                    let buffer = plan.take(&mut free, bytes);
                    live_bytes += plan.sizes[buffer];
                    releases[last_use[i].min(nodes.len())].push(buffer);
                    Some(buffer)
                }
            };
            plan.peak_step_bytes = plan.peak_step_bytes.max(live_bytes);
            for buffer in std::mem::take(&mut releases[i]) {
                live_bytes -= plan.sizes[buffer];
                free.push(buffer);
            }
        }
        plan
    }

    fn push(&mut self, bytes: u64) -> usize {
        self.sizes.push(bytes);
        self.sizes.len() - 1
    }

    /// The smallest free buffer that fits without wasting more than half of it, or a new one.
    fn take(&mut self, free: &mut Vec<usize>, bytes: u64) -> usize {
        let fits = |&(_, &b): &(usize, &usize)| self.sizes[b] >= bytes && self.sizes[b] <= bytes * 2;
        let best = free.iter().enumerate().filter(fits).min_by_key(|&(_, &b)| self.sizes[b]).map(|(slot, _)| slot);
        match best {
            Some(slot) => free.swap_remove(slot),
            None => self.push(bytes),
        }
    }
}

/// Sources, pinned values, in-place updates, and every node they depend on.
fn live_nodes(graph: &Graph, pinned: &[Value]) -> Vec<bool> {
    let nodes = graph.nodes();
    let mut live: Vec<bool> = nodes.iter().map(|n| n.inputs.is_empty() || !n.op.updated_inputs().is_empty()).collect();
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

/// Index of the last live node reading each node's buffer (through reshapes); pinned values
/// and values no node reads are kept to the end so reads and unread outputs stay valid.
fn last_uses(graph: &Graph, pinned: &[Value], live: &[bool]) -> Vec<usize> {
    let nodes = graph.nodes();
    let end = nodes.len();
    // The node that owns the buffer of each value (reshapes forward to their input's owner).
    let mut owner: Vec<usize> = (0..end).collect();
    for (i, node) in nodes.iter().enumerate() {
        if let Op::Reshape(_) = node.op {
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

//! One graph with a parameter store of its own: the simple case of a program and its store,
//! for a graph that shares its parameters with no other (a test, a benchmark, one-off
//! inference).

use std::collections::HashMap;

use kiln_core::{Backend, Error, HostTensor, Result, Role};

use crate::{Graph, MemoryPlan, Program, StepProfile, Store, Value};

pub struct Executor<B: Backend> {
    store: Store<B>,
    program: Program<B>,
}

impl<B: Backend> Executor<B> {
    /// A new store holding the graph's variables (their initial contents, or zeros), and the
    /// graph compiled against it.
    pub fn compile(backend: B, graph: &Graph, outputs: &[Value]) -> Result<Self> {
        let mut store = Store::new(backend);
        let program = Program::compile(&mut store, graph, outputs)?;
        Ok(Executor { store, program })
    }

    pub fn backend(&self) -> &B {
        self.store.backend()
    }

    pub fn plan(&self) -> &MemoryPlan {
        self.program.plan()
    }

    pub fn graph(&self) -> &Graph {
        self.program.graph()
    }

    pub fn store(&self) -> &Store<B> {
        &self.store
    }

    pub fn program(&self) -> &Program<B> {
        &self.program
    }

    /// Writes `tensor` into a source: an input of the program, or a variable of the store.
    pub fn set(&self, v: Value, tensor: &HostTensor) -> Result<()> {
        let node = self.graph().node(v);
        match node.op.role() {
            Role::Variable => {
                if tensor.shape != node.shape || tensor.dtype() != node.dtype {
                    let want = format!("{:?} {}", node.dtype, node.shape);
                    let got = format!("{:?} {}", tensor.dtype(), tensor.shape);
                    return Err(Error::shape(&format!("set `{}`", node.name), "wrong tensor", want, got));
                }
                self.store.write(&node.name, tensor)
            }
            Role::Input | Role::View | Role::Kernel => self.program.set(v, tensor),
        }
    }

    /// Sets inputs by name.
    pub fn feed(&self, inputs: &HashMap<&str, &HostTensor>) -> Result<()> {
        self.program.feed(inputs)
    }

    /// Runs one step as one submission and returns the values of `reads`.
    pub fn run(&mut self, reads: &[Value]) -> Result<Vec<HostTensor>> {
        self.program.run(&mut self.store, reads)
    }

    /// `run` for a host where nothing may block (a browser's page).
    pub async fn run_async(&mut self, reads: &[Value]) -> Result<Vec<HostTensor>> {
        self.program.run_async(&mut self.store, reads).await
    }

    /// Runs one step with every dispatch timed.
    pub fn profile(&mut self) -> Result<StepProfile> {
        self.program.profile(&mut self.store)
    }

    /// Reads values without running anything (parameters after training, say).
    pub fn read(&self, reads: &[Value]) -> Result<Vec<HostTensor>> {
        self.program.read(&self.store, reads)
    }
}

//! A model is a graph: append-only nodes with shapes checked as they are added, and
//! reverse-mode autodiff as a graph rewrite. A parameter store holds a model's device-resident
//! state by name; any number of programs — graphs compiled once for a backend against the
//! store — run over it, each step as one submission.

mod autodiff;
mod executor;
mod graph;
mod layers;
mod losses;
mod plan;
mod program;
mod store;

pub use autodiff::{grad, grad_with};
pub use executor::Executor;
pub use graph::{Graph, Node, Value};
pub use plan::{MemoryPlan, Slot};
pub use program::{DispatchTime, Program, StepProfile};
pub use store::Store;

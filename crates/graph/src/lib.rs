//! A model is a graph: append-only nodes with shapes checked as they are added, reverse-mode
//! autodiff as a graph rewrite, and an executor that compiles a graph once for a backend and
//! then runs it as one submission per step.

mod autodiff;
mod executor;
mod graph;
mod layers;
mod losses;
mod plan;

pub use autodiff::{grad, grad_with};
pub use executor::{DispatchTime, Executor, StepProfile};
pub use graph::{Graph, Node, Value};
pub use plan::MemoryPlan;

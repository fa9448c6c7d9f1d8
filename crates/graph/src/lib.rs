//! A model is a graph: append-only nodes with shapes checked as they are added, and
//! reverse-mode autodiff as a graph rewrite. A parameter store holds a model's device-resident
//! state by name; any number of programs — graphs compiled once for a backend against the
//! store — run over it, each step as one submission.
//!
//! ```
//! use kiln_core::{DType, HostTensor};
//! use kiln_graph::{Graph, Program, Store};
//! # fn main() -> kiln_core::Result<()> {
//! // y = x · w, with w a parameter the store holds by name.
//! let graph_at = |batch: usize| {
//!     let mut g = Graph::new();
//!     let x = g.input("x", vec![batch, 2], DType::F32);
//!     let w = g.variable_init("w", HostTensor::f32(vec![2, 1], vec![1.0, 2.0]).unwrap());
//!     let y = g.matmul(x, w).unwrap();
//!     (g, x, y)
//! };
//! let mut store = Store::new(kiln_cpu::Cpu);
//! let (one, x1, y1) = graph_at(1);
//! let (three, x3, y3) = graph_at(3);
//! let small = Program::compile(&mut store, &one, &[y1])?;
//! let large = Program::compile(&mut store, &three, &[y3])?; // binds the same `w`
//! store.write("w", &HostTensor::f32(vec![2, 1], vec![10.0, 0.0])?)?;
//! small.set(x1, &HostTensor::f32(vec![1, 2], vec![1.0, 1.0])?)?;
//! large.set(x3, &HostTensor::f32(vec![3, 2], vec![1.0, 0.0, 2.0, 0.0, 3.0, 0.0])?)?;
//! assert_eq!(small.run(&mut store, &[y1])?[0].as_f32()?, [10.0]);
//! assert_eq!(large.run(&mut store, &[y3])?[0].as_f32()?, [10.0, 20.0, 30.0]);
//! # Ok(()) }
//! ```

mod autodiff;
mod executor;
mod fuse;
mod graph;
mod layers;
mod losses;
mod plan;
mod program;
mod store;

pub use autodiff::{grad, grad_with};
pub use executor::Executor;
pub use fuse::{fuse, fusion_enabled};
pub use graph::{Graph, Node, Value};
pub use plan::{MemoryPlan, Slot};
pub use program::{DispatchTime, Program, StepProfile};
pub use store::Store;

//! Collectives for data-parallel training: the few operations the trainer needs from a set of
//! processes (ranks) — their number and this one's, a sum of a flat f32 buffer across them, a
//! broadcast, a barrier — behind one small trait. `Single` is one process (every operation a
//! no-op); `Mpi` (cargo feature `mpi`) is the job `mpirun` started.

use kiln_core::Result;

pub trait Collectives {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Sums `values` element by element across the ranks; every rank gets the sums.
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()>;
    /// Copies rank 0's `values` into every rank's (all ranks pass the same length).
    fn broadcast(&self, values: &mut [f32]) -> Result<()>;
    fn barrier(&self) -> Result<()>;

    /// Copies rank 0's `bytes` to every rank (the others pass anything; they get rank 0's).
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) -> Result<()> {
        let mut length = [bytes.len() as f32];
        self.broadcast(&mut length)?;
        // A byte per element: small data, and exact whatever the transport does to floats.
        let mut values: Vec<f32> = bytes.iter().map(|&b| f32::from(b)).collect();
        values.resize(length[0] as usize, 0.0);
        self.broadcast(&mut values)?;
        *bytes = values.iter().map(|&v| v as u8).collect();
        Ok(())
    }
}

/// One process: nothing to exchange.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Collectives for Single {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_sum(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn broadcast(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(feature = "mpi")]
pub use self::mpi_job::Mpi;

#[cfg(feature = "mpi")]
mod mpi_job {
    use kiln_core::{Error, Result};
    use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
    use mpi::topology::{Communicator, SimpleCommunicator};

    use super::Collectives;

    /// The ranks of the job `mpirun` started. A failure in one rank must end them all (a rank
    /// left waiting in a collective would wait forever): `Mpi::start` makes a panic abort the
    /// job, and `abort` does the same for an error.
    pub struct Mpi {
        _universe: mpi::environment::Universe,
        world: SimpleCommunicator,
    }

    impl Mpi {
        /// Joins the job; a panic in this process from now on aborts every rank.
        pub fn start() -> Result<Self> {
            let universe = mpi::initialize().ok_or_else(|| Error::data("MPI", "was already initialised"))?;
            let world = universe.world();
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                default(info);
                SimpleCommunicator::world().abort(101);
            }));
            Ok(Mpi { _universe: universe, world })
        }

        /// Ends every rank of the job with `code`.
        pub fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }

        /// This rank's index among the ranks of its machine (OpenMPI's local rank), to pick
        /// one GPU of several.
        pub fn local_rank(&self) -> usize {
            std::env::var("OMPI_COMM_WORLD_LOCAL_RANK").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
        }
    }

    impl Collectives for Mpi {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }

        fn size(&self) -> usize {
            self.world.size() as usize
        }

        fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
            let send = values.to_vec();
            self.world.all_reduce_into(&send[..], values, SystemOperation::sum());
            Ok(())
        }

        fn broadcast(&self, values: &mut [f32]) -> Result<()> {
            self.world.process_at_rank(0).broadcast_into(values);
            Ok(())
        }

        fn barrier(&self) -> Result<()> {
            self.world.barrier();
            Ok(())
        }
    }
}

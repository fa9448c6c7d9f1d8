//! The parameter store: a model's device-resident state by name — parameters, optimizer state,
//! running statistics — and the step counters of its updates, shared by every program
//! compiled against it. A training program, an evaluation program at another batch size and
//! a generation program read and write the same buffers; nothing passes through the host
//! between them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_core::{Backend, DType, Error, HostTensor, Result, Shape};

/// One named tensor of a store.
struct Entry<Buf> {
    buffer: Buf,
    shape: Shape,
    dtype: DType,
}

pub struct Store<B: Backend> {
    backend: B,
    id: u64,
    entries: BTreeMap<String, Entry<B::Buffer>>,
    counters: BTreeMap<String, u32>,
    sealed: bool,
}

impl<B: Backend> Store<B> {
    pub fn new(backend: B) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Store { backend, id, entries: BTreeMap::new(), counters: BTreeMap::new(), sealed: false }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// A number no other store of this process has: programs remember the store they were
    /// compiled against.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The names of the tensors, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The shape and dtype of `name`, if the store holds it.
    pub fn spec(&self, name: &str) -> Option<(&Shape, DType)> {
        self.entries.get(name).map(|e| (&e.shape, e.dtype))
    }

    /// Device bytes the store's buffers take.
    pub fn bytes(&self) -> u64 {
        self.entries.values().map(|e| self.backend.allocation_bytes(buffer_bytes(&e.shape))).sum()
    }

    /// Creates `name` holding `tensor`, or overwrites its contents: an entry's shape and dtype
    /// are fixed once it exists (programs are bound to its buffer).
    pub fn insert(&mut self, name: &str, tensor: &HostTensor) -> Result<()> {
        if self.entries.contains_key(name) {
            return self.write(name, tensor);
        }
        self.create(name, &tensor.shape, tensor.dtype(), Some(tensor))
    }

    /// Overwrites the contents of `name`, which must exist with `tensor`'s shape and dtype.
    pub fn write(&self, name: &str, tensor: &HostTensor) -> Result<()> {
        let entry = self.entry(name)?;
        check_fits(name, entry, &tensor.shape, tensor.dtype())?;
        self.backend.write(&entry.buffer, &tensor.to_bytes())
    }

    /// Reads `names` back, in one submission.
    pub fn read(&self, names: &[&str]) -> Result<Vec<HostTensor>> {
        let entries = names.iter().map(|name| self.entry(name)).collect::<Result<Vec<_>>>()?;
        let requests: Vec<_> = entries.iter().map(|e| (&e.buffer, e.shape.bytes())).collect();
        let bytes = self.backend.run(&[], &requests)?;
        entries.iter().zip(bytes).map(|(e, b)| HostTensor::from_bytes(e.shape.clone(), e.dtype, &b)).collect()
    }

    /// `read` for a host where nothing may block (a browser's page).
    pub async fn read_async(&self, names: &[&str]) -> Result<Vec<HostTensor>> {
        let entries = names.iter().map(|name| self.entry(name)).collect::<Result<Vec<_>>>()?;
        let requests: Vec<_> = entries.iter().map(|e| (&e.buffer, e.shape.bytes())).collect();
        let bytes = self.backend.run_async(&[], &requests)?.await?;
        entries.iter().zip(bytes).map(|(e, b)| HostTensor::from_bytes(e.shape.clone(), e.dtype, &b)).collect()
    }

    /// Every tensor, by name.
    pub fn read_all(&self) -> Result<BTreeMap<String, HostTensor>> {
        let names: Vec<&str> = self.names().collect();
        Ok(names.iter().map(|n| n.to_string()).zip(self.read(&names)?).collect())
    }

    /// `read_all` for a host where nothing may block (a browser's page).
    pub async fn read_all_async(&self) -> Result<BTreeMap<String, HostTensor>> {
        let names: Vec<&str> = self.names().collect();
        Ok(names.iter().map(|n| n.to_string()).zip(self.read_async(&names).await?).collect())
    }

    /// Runs so far of the updates (or dropout layer) that `name` counts; 0 if none ran.
    pub fn counter(&self, name: &str) -> u32 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    pub fn counters(&self) -> &BTreeMap<String, u32> {
        &self.counters
    }

    /// Sets a counter (resuming from a checkpoint).
    pub fn set_counter(&mut self, name: &str, runs: u32) {
        self.counters.insert(name.into(), runs);
    }

    pub(crate) fn advance(&mut self, name: &str) {
        *self.counters.entry(name.into()).or_default() += 1;
    }

    /// From now on, compiling a program that needs a variable the store lacks is an error
    /// (a store filled from a checkpoint must not silently gain freshly initialised weights).
    pub fn seal(&mut self) {
        self.sealed = true;
    }

    /// Binds a graph's variable: creates it (from `init`, or zeros) when absent, else checks
    /// that the store's tensor has the graph's shape and dtype.
    pub(crate) fn declare(&mut self, name: &str, shape: &Shape, dtype: DType, init: Option<&HostTensor>) -> Result<()> {
        if name.is_empty() {
            return Err(Error::attribute("variable", "a variable needs a name to live in the parameter store"));
        }
        match self.entries.get(name) {
            Some(entry) => check_fits(name, entry, shape, dtype),
            None if self.sealed => Err(Error::MissingVariable {
                variable: name.into(),
                hint: " (the store is sealed: it holds a checkpoint's tensors, and this graph needs another)".into(),
            }),
            None => self.create(name, shape, dtype, init),
        }
    }

    fn create(&mut self, name: &str, shape: &Shape, dtype: DType, init: Option<&HostTensor>) -> Result<()> {
        let buffer = self.backend.alloc(buffer_bytes(shape), name)?;
        // Pooled buffers hold whatever their last user left: a new entry starts from its
        // initial contents, or zeros.
        let bytes = init.map_or_else(|| vec![0u8; shape.bytes() as usize], HostTensor::to_bytes);
        self.backend.write(&buffer, &bytes)?;
        self.entries.insert(name.into(), Entry { buffer, shape: shape.clone(), dtype });
        Ok(())
    }

    fn entry(&self, name: &str) -> Result<&Entry<B::Buffer>> {
        self.entries.get(name).ok_or_else(|| Error::MissingVariable { variable: name.into(), hint: String::new() })
    }

    pub(crate) fn buffer(&self, name: &str) -> Result<&B::Buffer> {
        self.entry(name).map(|e| &e.buffer)
    }
}

/// A tensor's buffer: at least 4 bytes, so that an empty tensor still binds.
fn buffer_bytes(shape: &Shape) -> u64 {
    shape.bytes().max(4)
}

fn check_fits<Buf>(name: &str, entry: &Entry<Buf>, shape: &Shape, dtype: DType) -> Result<()> {
    if entry.shape != *shape || entry.dtype != dtype {
        return Err(Error::VariableMismatch {
            variable: name.into(),
            store: format!("{:?} {}", entry.dtype, entry.shape),
            graph: format!("{dtype:?} {shape}"),
        });
    }
    Ok(())
}

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure Kiln reports. Shape and attribute errors surface once, when a graph is built;
/// environment failures (adapter, device, memory, shader) surface as they happen.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{op}: {message} (expected {expected}, got {got})")]
    Shape { op: String, message: String, expected: String, got: String },
    #[error("{op}: invalid attribute: {message}")]
    Attribute { op: String, message: String },
    #[error("input `{input}` was never set: set it (Program::set or feed) before running")]
    InputNotSet { input: String },
    #[error("node {node} ({op}) was not compiled as an output: list it among the outputs when compiling")]
    NotAnOutput { node: usize, op: String },
    #[error("{what} `{name}` cannot be set: {why}")]
    NotSettable { what: String, name: String, why: String },
    #[error(
        "variable `{variable}` is {store} in the parameter store, not {graph}: use the store's shape (a graph built for another model or size needs a store of its own)"
    )]
    VariableMismatch { variable: String, store: String, graph: String },
    #[error("variable `{variable}` is not in the parameter store{hint}")]
    MissingVariable { variable: String, hint: String },
    #[error(
        "this program was compiled for parameter store #{compiled} but was given store #{given}: run it with the store it was compiled against"
    )]
    WrongStore { compiled: u64, given: u64 },
    #[error("{adapter} refused a device: {message}")]
    DeviceRequest { adapter: String, message: String },
    #[error(
        "no GPU adapter found{detail}. On Debian/Ubuntu install Mesa's software Vulkan driver: `sudo apt-get install mesa-vulkan-drivers` (or set KILN_BACKEND=gl for llvmpipe)"
    )]
    NoAdapter { detail: String },
    #[error("no adapter matches {asked}; the adapters present are: {present}. {advice}")]
    NoMatchingAdapter { asked: String, present: String, advice: String },
    #[error("tensor `{tensor}` needs {bytes} bytes but the adapter allows at most {limit} bytes ({limit_name})")]
    Limit { tensor: String, bytes: u64, limit: u64, limit_name: &'static str },
    #[error("GPU validation error{context}: {message}")]
    Validation { context: String, message: String },
    #[error("GPU out of memory{context}")]
    OutOfMemory { context: String },
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    #[error("timed out after {seconds} s waiting for the GPU: {what} (KILN_TIMEOUT_SECS sets the bound)")]
    Timeout { what: String, seconds: f64 },
    #[error("{0}")]
    Unsupported(String),
    #[error("{what}: {message}")]
    Data { what: String, message: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl Error {
    pub fn shape(op: &str, message: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        Error::Shape { op: op.into(), message: message.into(), expected: expected.to_string(), got: got.to_string() }
    }

    pub fn attribute(op: &str, message: impl Into<String>) -> Self {
        Error::Attribute { op: op.into(), message: message.into() }
    }

    pub fn data(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Data { what: what.into(), message: message.into() }
    }
}

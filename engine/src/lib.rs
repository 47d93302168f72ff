//! Lookout's engine: the Permify schema language, the in-memory index, the evaluators and
//! validation files. Synchronous and free of I/O: the server feeds it and runs it on a pool.

pub mod eval;
pub mod index;
pub mod model;
pub mod reference;
pub mod schema;
mod stack;
pub mod tokens;
pub mod validation;

pub use eval::{CheckResult, Context, EntitySet, EvalError, Evaluator, Model};
pub use index::{Snapshot, Store, WriteBatch};
pub use model::{AttrValue, Attribute, EntityRef, SubjectRef, Tuple};

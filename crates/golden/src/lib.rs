//! Kiln's golden cases: the operators of `../shared/golden/FORMAT.md` as graph nodes (`ops`),
//! and each case built, differentiated, run on a backend and compared (`golden`). A library of
//! its own so that any host runs them: the CLI's `kiln check`, the tests, a browser's page.

pub mod golden;
pub mod ops;

//! ferrolb controller library.

#![forbid(unsafe_code)]

pub mod allocator;
pub mod events;
pub mod fuzz;
pub mod http;
pub mod leader;
pub mod memberlist;
pub mod metrics;
pub mod migrate;
pub mod reconciler;
pub mod run;
pub mod service;
pub mod stores;
pub mod validate;

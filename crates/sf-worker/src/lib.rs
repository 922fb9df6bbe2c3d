#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod adapters;
pub mod launcher;
pub mod log;
pub mod process;

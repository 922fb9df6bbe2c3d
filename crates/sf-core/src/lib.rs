#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cron;
pub mod cycle;
pub mod dispatch;
pub mod naming;
pub mod ready;
pub mod status;

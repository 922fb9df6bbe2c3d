#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod approval;
pub mod condition;
pub mod cron;
pub mod cycle;
pub mod digest;
pub mod discover;
pub mod dispatch;
pub mod egress;
pub mod guard;
pub mod jobs;
pub mod manifest;
pub mod merge_queue;
pub mod naming;
pub mod playbook;
pub mod ready;
pub mod recovery;
pub mod redact;
pub mod skills;
pub mod staffing;
pub mod status;
pub mod templates;
pub mod tools;

//! One module per command group.

pub mod agent;
pub mod approval;
pub mod budget;
pub mod daemon;
pub mod demo;
pub mod dep;
pub mod docs;
pub mod events;
pub mod gc;
pub mod guard;
pub mod init;
pub mod logs;
pub mod message;
pub mod mr;
pub mod plan;
pub mod playbook;
pub mod push;
pub mod staff;
pub mod steward;
pub mod task;

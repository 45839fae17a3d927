//! One module per subcommand.

pub mod dev;
pub mod dev_demo;
pub mod run;
pub mod schemas;
pub mod send;
pub mod show;

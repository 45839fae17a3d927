//! One module per subcommand.

pub mod apikey;
pub mod attach;
pub mod audit;
pub mod bench;
pub mod bench_fill;
pub mod bench_read;
pub mod check;
pub mod common;
pub mod dev;
pub mod dlq;
pub mod export;
pub mod health;
pub mod import;
pub mod order;
pub mod orders;
pub mod progress;
pub mod project;
pub mod quarantine;
pub mod replay;
pub mod review;
pub mod run;
pub mod sandbox;
pub mod schemas;
pub mod send;
pub mod serving;
pub mod show;

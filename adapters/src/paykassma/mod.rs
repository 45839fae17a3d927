//! (filled in step 4)
pub mod signature;

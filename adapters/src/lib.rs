//! placeholder: to be written

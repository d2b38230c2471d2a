//! Failure notices: which pipelines notify, incident transitions, rendering.
//! Everything here is pure; the store applies it and the worker delivers it.
pub mod incident;
pub mod policy;
pub mod render;

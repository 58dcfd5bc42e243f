//! Authentication and authorisation: bearer tokens, and the actor a token
//! stands for.

pub mod token;

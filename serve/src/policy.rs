//! The decision policy (`[serve.policy]`): it lives in `omen_models::policy`, shared with
//! `omen evaluate`, which replays held-out canaries through the same decisions.

pub use omen_models::policy::*;

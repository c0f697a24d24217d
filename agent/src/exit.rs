//! Exit codes of `shipshape`, in one place.

/// Every check passed, or failed only below the leak severity.
pub const SHIPSHAPE: u8 = 0;
/// At least one finding leaks.
pub const LEAKY: u8 = 1;
/// Bad usage, a policy that does not parse, or another error: nothing was judged.
pub const ERROR: u8 = 2;

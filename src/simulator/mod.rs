//! A Microsoft 365 tenant simulator: the identity platform and Graph v1.0, stateful and throttled.
//! It shares no code with `crate::m365`: the two are independent readings of Microsoft's protocol.

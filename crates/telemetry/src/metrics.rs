//! The metrics registry (issue 28, point 1).

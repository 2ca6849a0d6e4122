//! Writes far more than the result limit to stdout.
use std::io::Write;
fn main() {
    let chunk = vec![b'x'; 64 * 1024];
    let mut out = std::io::stdout().lock();
    for _ in 0..200 {
        out.write_all(&chunk).unwrap();
    }
}

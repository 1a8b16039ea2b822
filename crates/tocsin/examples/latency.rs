//! A minimal ping-pong between ranks 0 and 1 printing one-way latency for a few sizes.
//! The full benchmark is `tocsin bench pingpong`; this is the smallest program to profile.
//!
//! `tocsin run -n 2 -- target/release/examples/latency`

use std::time::Instant;

fn main() -> Result<(), tocsin::Error> {
    let comm = tocsin::init()?;
    if comm.size() < 2 {
        eprintln!("latency needs 2 ranks: tocsin run -n 2 -- latency");
        return Ok(());
    }
    let me = comm.rank();
    for &size in &[0usize, 8, 1024, 16384, 65536, 1 << 20, 4 << 20] {
        let mut buf = vec![0u8; size];
        let iters = if size <= 65536 { 20_000 } else { 200 };
        let mut t = Instant::now();
        for i in 0..iters + iters / 10 {
            if i == iters / 10 {
                t = Instant::now();
            }
            match me {
                0 => {
                    comm.send(&buf, 1, 0)?;
                    comm.recv(&mut buf, 1, 0)?;
                }
                1 => {
                    comm.recv(&mut buf, 0, 0)?;
                    comm.send(&buf, 0, 0)?;
                }
                _ => {}
            }
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / iters as f64 / 2.0;
        if me == 0 {
            println!("{size:>9} B  {us:>9.3} us  {:>9.1} MB/s", size as f64 / us);
        }
    }
    Ok(())
}

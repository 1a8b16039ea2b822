//! Passes a token around the ranks and exchanges one large message with each neighbour:
//! the smallest complete tocsin program.
//!
//! `tocsin run -n 4 -- target/release/examples/ring_pass`

fn main() -> Result<(), tocsin::Error> {
    let comm = tocsin::init()?;
    let (me, n) = (comm.rank(), comm.size());
    let next = (me + 1) % n;
    let prev = (me + n - 1) % n;
    // A token around the ring.
    let mut token = [0u64; 1];
    if me == 0 {
        token[0] = 1;
        comm.send(&token, next, 0)?;
        comm.recv(&mut token, prev, 0)?;
        println!("token came back with value {} after {n} ranks", token[0]);
        assert_eq!(token[0], n as u64);
    } else {
        comm.recv(&mut token, prev, 0)?;
        token[0] += 1;
        comm.send(&token, next, 0)?;
    }
    // A large exchange with both neighbours (rendezvous), non-blocking.
    let out: Vec<u32> = (0..1 << 20).map(|i| i ^ me).collect();
    let mut inbuf = vec![0u32; 1 << 20];
    comm.scope(|s| -> Result<(), tocsin::Error> {
        let r = s.irecv(&mut inbuf, prev, 1)?;
        let q = s.isend(&out, next, 1)?;
        r.wait()?;
        q.wait()?;
        Ok(())
    })?;
    assert!(inbuf.iter().enumerate().all(|(i, &v)| v == i as u32 ^ prev));
    comm.barrier()?;
    println!("rank {me}/{n}: ok");
    Ok(())
}

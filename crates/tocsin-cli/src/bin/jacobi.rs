//! `jacobi`: a 2D heat-equation (Laplace) solver by Jacobi iteration with halo exchange,
//! a real workload for tocsin.
//!
//! `tocsin run -n 4 -- target/release/jacobi --nx 1024 --ny 1024 --iters 500 --check`
//!
//! - The global grid has `nx × ny` interior points surrounded by a fixed (Dirichlet)
//!   boundary: the top edge is held at 100, the other edges at 0; the interior starts at 0.
//! - The ranks form a `px × py` process grid as close to square as possible (the larger
//!   factor along the larger grid dimension: 4 → 2×2, 2 → 2×1, 3 → 3×1, 6 → 3×2 for a square
//!   grid); blocks may be uneven when `px`/`py` do not divide `nx`/`ny`.
//! - Each rank owns a block plus a one-cell halo. Every iteration it posts non-blocking
//!   receives and sends to its (up to 4) neighbours in a `comm.scope`, updates the cells of
//!   its block that need no halo while the messages travel, waits, then updates the border
//!   cells. North/south rows are sent from and received into the grid directly; east/west
//!   columns are packed into contiguous buffers.
//! - Every `--report` iterations and at the end, the global residual `max |u_new − u_old|`
//!   is computed with a binomial-tree reduction to rank 0 followed by a broadcast, built on
//!   point-to-point messages.
//! - `--check`: every rank's block is gathered to rank 0, which solves the same problem
//!   serially (same arithmetic per cell, so the results are bit-identical) and compares
//!   point by point; the program exits with 1 if the max abs difference exceeds 1e-10.
//!
//! Rank 0 prints the solve time, iterations/s and MLUP/s (million lattice-site updates per
//! second). `--json` adds one machine-readable summary line starting with `json: `.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use tocsin::{Comm, Rank, Request, Tag};

/// Value of the hot (top) edge.
const HOT: f64 = 100.0;
/// Tolerance of `--check`.
const CHECK_TOL: f64 = 1e-10;

/// Tags. A halo message is tagged with the direction it travels in.
const TAG_TO_NORTH: Tag = 1;
const TAG_TO_SOUTH: Tag = 2;
const TAG_TO_WEST: Tag = 3;
const TAG_TO_EAST: Tag = 4;
const TAG_REDUCE: Tag = 10;
const TAG_BCAST: Tag = 11;
const TAG_GATHER: Tag = 12;

/// 2D Jacobi heat-equation solver with halo exchange over the ranks of a tocsin job.
#[derive(Parser, Debug, Clone)]
#[command(name = "jacobi", version, about)]
struct Args {
    /// Interior points along x (columns).
    #[arg(long, default_value_t = 512)]
    nx: usize,
    /// Interior points along y (rows).
    #[arg(long, default_value_t = 512)]
    ny: usize,
    /// Jacobi iterations.
    #[arg(long, default_value_t = 500)]
    iters: usize,
    /// Compute and print the global residual every REPORT iterations (0: only at the end).
    #[arg(long, default_value_t = 100)]
    report: usize,
    /// Gather the result to rank 0, solve serially there and compare point by point.
    #[arg(long)]
    check: bool,
    /// Process-grid columns (default: as square as possible; with --py, px × py = ranks).
    #[arg(long)]
    px: Option<usize>,
    /// Process-grid rows.
    #[arg(long)]
    py: Option<usize>,
    /// While updating the inner cells, test the pending halo requests every ROWS rows so a
    /// polling library can progress them (0: never, rely on the library).
    #[arg(long, default_value_t = 0)]
    test_rows: usize,
    /// Also print a one-line JSON summary (`json: {...}`) on rank 0.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let comm = match tocsin::init() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jacobi: tocsin init failed: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&comm, &args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jacobi: rank {}: {e}", comm.rank());
            ExitCode::from(2)
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Memory available to new allocations (`MemAvailable` of `/proc/meminfo`), bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

// ---------------------------------------------------------------------------------------
// Decomposition
// ---------------------------------------------------------------------------------------

/// Splits `n` ranks into `(px, py)`, `px * py == n`, as square as possible, the larger
/// factor along the larger grid dimension (x on ties).
fn process_grid(n: usize, nx: usize, ny: usize) -> (usize, usize) {
    let mut small = 1;
    let mut d = 1;
    while d * d <= n {
        if n % d == 0 {
            small = d;
        }
        d += 1;
    }
    let large = n / small;
    if nx >= ny {
        (large, small)
    } else {
        (small, large)
    }
}

/// Part `k` of `n` points split in `p` nearly equal parts: `(offset, len)`; the first
/// `n % p` parts get one more point.
fn split(n: usize, p: usize, k: usize) -> (usize, usize) {
    let base = n / p;
    let extra = n % p;
    (k * base + k.min(extra), base + usize::from(k < extra))
}

/// One rank's block of the global grid.
#[derive(Debug, Clone, Copy)]
struct Block {
    /// Position in the process grid.
    cx: usize,
    cy: usize,
    /// Global index (0-based, interior coordinates) of the block's first column / row.
    x0: usize,
    y0: usize,
    /// Owned columns / rows.
    nx: usize,
    ny: usize,
}

impl Block {
    fn of(rank: usize, px: usize, py: usize, nx: usize, ny: usize) -> Block {
        let (cx, cy) = (rank % px, rank / px);
        let (x0, bnx) = split(nx, px, cx);
        let (y0, bny) = split(ny, py, cy);
        Block {
            cx,
            cy,
            x0,
            y0,
            nx: bnx,
            ny: bny,
        }
    }
}

/// Neighbour ranks (None on a global boundary).
#[derive(Debug, Clone, Copy)]
struct Neighbours {
    north: Option<Rank>,
    south: Option<Rank>,
    west: Option<Rank>,
    east: Option<Rank>,
}

impl Neighbours {
    fn of(b: &Block, px: usize, py: usize) -> Neighbours {
        let r = |cx: usize, cy: usize| (cy * px + cx) as Rank;
        Neighbours {
            north: (b.cy > 0).then(|| r(b.cx, b.cy - 1)),
            south: (b.cy + 1 < py).then(|| r(b.cx, b.cy + 1)),
            west: (b.cx > 0).then(|| r(b.cx - 1, b.cy)),
            east: (b.cx + 1 < px).then(|| r(b.cx + 1, b.cy)),
        }
    }
}

/// The Dirichlet boundary value at global coordinates (including the boundary ring):
/// `gx` in `0..=nx+1`, `gy` in `0..=ny+1`; row 0 is the top edge. The top edge is hot, the
/// west edge cools linearly from the hot corner, the east and bottom edges are cold: no
/// symmetry that could hide a halo sent to the wrong side.
fn boundary(gx: usize, gy: usize, nx: usize, ny: usize) -> f64 {
    let _ = nx;
    if gy == 0 {
        HOT
    } else if gx == 0 {
        HOT * (1.0 - gy as f64 / (ny + 1) as f64)
    } else {
        0.0
    }
}

// ---------------------------------------------------------------------------------------
// The stencil
// ---------------------------------------------------------------------------------------

/// Updates one row segment: `out[k] = 0.25 * ((left[k] + right[k]) + (up[k] + down[k]))`,
/// where `left`/`right` are the row shifted by one, and returns `max |out − old|` when `RES`
/// (0 otherwise). The serial check uses the same expression, so results are bit-identical.
#[inline(always)]
fn sweep<const RES: bool>(
    out: &mut [f64],
    up: &[f64],
    down: &[f64],
    left: &[f64],
    right: &[f64],
    old: &[f64],
) -> f64 {
    let n = out.len();
    let (up, down, left, right, old) = (&up[..n], &down[..n], &left[..n], &right[..n], &old[..n]);
    let mut res = 0.0f64;
    for k in 0..n {
        let v = 0.25 * ((left[k] + right[k]) + (up[k] + down[k]));
        out[k] = v;
        if RES {
            res = res.max((v - old[k]).abs());
        }
    }
    res
}

/// Updates cells `i0..i1` of local row `j` (halo-inclusive indices, row width `w`) from
/// `u` (which holds rows `jbase..` of the local array) into `unew` (the full local array).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn sweep_cells<const RES: bool>(
    u: &[f64],
    jbase: usize,
    unew: &mut [f64],
    w: usize,
    j: usize,
    i0: usize,
    i1: usize,
) -> f64 {
    if i0 >= i1 {
        return 0.0;
    }
    let row = |jj: usize| (jj - jbase) * w;
    let (m, a, b) = (row(j), row(j - 1), row(j + 1));
    sweep::<RES>(
        &mut unew[j * w + i0..j * w + i1],
        &u[a + i0..a + i1],
        &u[b + i0..b + i1],
        &u[m + i0 - 1..m + i1 - 1],
        &u[m + i0 + 1..m + i1 + 1],
        &u[m + i0..m + i1],
    )
}

// ---------------------------------------------------------------------------------------
// Point-to-point reductions
// ---------------------------------------------------------------------------------------

/// Combines `vals` element-wise over all ranks with `op` (binomial tree to rank 0, then a
/// binomial broadcast); every rank returns with the result in `vals`.
fn allreduce(comm: &Comm, vals: &mut [f64], op: fn(f64, f64) -> f64) -> Res<()> {
    let n = comm.size();
    let me = comm.rank();
    let mut tmp = vec![0.0f64; vals.len()];
    // Reduce.
    let mut mask = 1;
    while mask < n {
        if me & mask != 0 {
            comm.send(vals, me - mask, TAG_REDUCE)?;
            break;
        }
        if me + mask < n {
            comm.recv(&mut tmp, me + mask, TAG_REDUCE)?;
            for (v, t) in vals.iter_mut().zip(&tmp) {
                *v = op(*v, *t);
            }
        }
        mask <<= 1;
    }
    // Broadcast.
    let mut mask = 1;
    while mask < n {
        if me & mask != 0 {
            comm.recv(vals, me - mask, TAG_BCAST)?;
            break;
        }
        mask <<= 1;
    }
    mask >>= 1;
    while mask > 0 {
        if me + mask < n {
            comm.send(vals, me + mask, TAG_BCAST)?;
        }
        mask >>= 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The parallel solver
// ---------------------------------------------------------------------------------------

struct Solver {
    b: Block,
    nb: Neighbours,
    /// Local row width including halos.
    w: usize,
    u: Vec<f64>,
    unew: Vec<f64>,
    /// Packed west/east columns, outgoing and incoming.
    sw: Vec<f64>,
    se: Vec<f64>,
    rw: Vec<f64>,
    re: Vec<f64>,
    test_rows: usize,
    /// Time spent waiting for halos.
    wait: Duration,
}

impl Solver {
    fn new(b: Block, nb: Neighbours, gnx: usize, gny: usize, test_rows: usize) -> Solver {
        let w = b.nx + 2;
        let h = b.ny + 2;
        let mut u = vec![0.0f64; w * h];
        // Halo cells on the global boundary hold the Dirichlet values; the others are
        // overwritten by the exchange.
        for j in 0..h {
            for i in 0..w {
                let (gx, gy) = (b.x0 + i, b.y0 + j);
                let on_boundary = gx == 0 || gy == 0 || gx == gnx + 1 || gy == gny + 1;
                if on_boundary {
                    u[j * w + i] = boundary(gx, gy, gnx, gny);
                }
            }
        }
        let unew = u.clone();
        Solver {
            b,
            nb,
            w,
            u,
            unew,
            sw: vec![0.0; b.ny],
            se: vec![0.0; b.ny],
            rw: vec![0.0; b.ny],
            re: vec![0.0; b.ny],
            test_rows,
            wait: Duration::ZERO,
        }
    }

    /// One Jacobi iteration; returns the local `max |u_new − u_old|` when `RES`.
    fn step<const RES: bool>(&mut self, comm: &Comm) -> Res<f64> {
        let (nx, ny, w) = (self.b.nx, self.b.ny, self.w);
        let nb = self.nb;
        // Pack the outgoing columns.
        if nb.west.is_some() {
            for (j, s) in self.sw.iter_mut().enumerate() {
                *s = self.u[(j + 1) * w + 1];
            }
        }
        if nb.east.is_some() {
            for (j, s) in self.se.iter_mut().enumerate() {
                *s = self.u[(j + 1) * w + nx];
            }
        }
        // Split u into its top halo row, the owned rows and its bottom halo row, so that
        // the halo rows can be received in place while the owned rows are read.
        let (top, rest) = self.u.split_at_mut(w);
        let (mid, bottom) = rest.split_at_mut(ny * w);
        let mid: &[f64] = mid;
        let (sw, se, rw, re) = (&self.sw, &self.se, &mut self.rw, &mut self.re);
        let unew = &mut self.unew;
        let test_rows = self.test_rows;
        let mut waited = Duration::ZERO;

        let inner = comm.scope(|s| -> Res<f64> {
            let mut reqs: Vec<Request<'_>> = Vec::with_capacity(8);
            // Receives first, then sends.
            if let Some(r) = nb.north {
                reqs.push(s.irecv(&mut top[1..=nx], r, TAG_TO_SOUTH)?);
            }
            if let Some(r) = nb.south {
                reqs.push(s.irecv(&mut bottom[1..=nx], r, TAG_TO_NORTH)?);
            }
            if let Some(r) = nb.west {
                reqs.push(s.irecv(&mut rw[..], r, TAG_TO_EAST)?);
            }
            if let Some(r) = nb.east {
                reqs.push(s.irecv(&mut re[..], r, TAG_TO_WEST)?);
            }
            if let Some(r) = nb.north {
                reqs.push(s.isend(&mid[1..=nx], r, TAG_TO_NORTH)?);
            }
            if let Some(r) = nb.south {
                reqs.push(s.isend(
                    &mid[(ny - 1) * w + 1..(ny - 1) * w + 1 + nx],
                    r,
                    TAG_TO_SOUTH,
                )?);
            }
            if let Some(r) = nb.west {
                reqs.push(s.isend(&sw[..], r, TAG_TO_WEST)?);
            }
            if let Some(r) = nb.east {
                reqs.push(s.isend(&se[..], r, TAG_TO_EAST)?);
            }
            // Inner cells (rows 2..ny-1, columns 2..nx-1) need no halo: update them while
            // the messages travel.
            let mut res = 0.0f64;
            for j in 2..ny {
                res = res.max(sweep_cells::<RES>(mid, 1, unew, w, j, 2, nx));
                if test_rows > 0 && (j - 1) % test_rows == 0 {
                    for q in reqs.iter_mut() {
                        q.test()?;
                    }
                }
            }
            let t = Instant::now();
            tocsin::wait_all(reqs)?;
            waited = t.elapsed();
            Ok(res)
        })?;
        self.wait += waited;

        // Unpack the received columns into the halo.
        if nb.west.is_some() {
            for (j, v) in self.rw.iter().enumerate() {
                self.u[(j + 1) * w] = *v;
            }
        }
        if nb.east.is_some() {
            for (j, v) in self.re.iter().enumerate() {
                self.u[(j + 1) * w + nx + 1] = *v;
            }
        }
        // Border cells: first and last rows, then first and last columns of the rows in
        // between.
        let (u, unew) = (&self.u, &mut self.unew);
        let mut res = inner;
        res = res.max(sweep_cells::<RES>(u, 0, unew, w, 1, 1, nx + 1));
        if ny > 1 {
            res = res.max(sweep_cells::<RES>(u, 0, unew, w, ny, 1, nx + 1));
        }
        for j in 2..ny {
            res = res.max(sweep_cells::<RES>(u, 0, unew, w, j, 1, 2));
            if nx > 1 {
                res = res.max(sweep_cells::<RES>(u, 0, unew, w, j, nx, nx + 1));
            }
        }
        std::mem::swap(&mut self.u, &mut self.unew);
        Ok(res)
    }

    /// The owned cells, row by row, contiguous.
    fn block(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.b.nx * self.b.ny);
        for j in 1..=self.b.ny {
            out.extend_from_slice(&self.u[j * self.w + 1..j * self.w + 1 + self.b.nx]);
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// The serial reference
// ---------------------------------------------------------------------------------------

/// Solves the whole grid in one process with a straightforward loop; returns the grid
/// (with its boundary ring, row width `nx + 2`) and the last iteration's residual.
fn serial(nx: usize, ny: usize, iters: usize) -> (Vec<f64>, f64) {
    let w = nx + 2;
    let h = ny + 2;
    let mut u = vec![0.0f64; w * h];
    for j in 0..h {
        for i in 0..w {
            if i == 0 || j == 0 || i == nx + 1 || j == ny + 1 {
                u[j * w + i] = boundary(i, j, nx, ny);
            }
        }
    }
    let mut unew = u.clone();
    let mut res = 0.0f64;
    for _ in 0..iters {
        res = 0.0;
        for j in 1..=ny {
            for i in 1..=nx {
                let v = 0.25
                    * ((u[j * w + i - 1] + u[j * w + i + 1])
                        + (u[(j - 1) * w + i] + u[(j + 1) * w + i]));
                unew[j * w + i] = v;
                res = res.max((v - u[j * w + i]).abs());
            }
        }
        std::mem::swap(&mut u, &mut unew);
    }
    (u, res)
}

// ---------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------

fn run(comm: &Comm, a: &Args) -> Res<ExitCode> {
    let n = comm.size() as usize;
    let me = comm.rank() as usize;
    let root = me == 0;
    // Every rank says why it stops: the first rank to exit makes the launcher end the job,
    // so a message printed by rank 0 alone could be cut off by that.
    let fail = |msg: String| -> Res<ExitCode> {
        eprintln!("jacobi: rank {me}: {msg}");
        Ok(ExitCode::from(2))
    };
    if a.nx == 0 || a.ny == 0 {
        return fail(format!(
            "the grid must not be empty (got {} x {})",
            a.nx, a.ny
        ));
    }
    // Every rank holds two arrays of its block (all ranks together: the whole grid twice),
    // and with --check rank 0 also holds the gathered grid and a serial solve (three more).
    let arrays: u64 = if a.check { 5 } else { 2 };
    let need = (a.nx as u64)
        .checked_add(2)
        .zip((a.ny as u64).checked_add(2))
        .and_then(|(w, h)| w.checked_mul(h))
        .and_then(|p| p.checked_mul(8 * arrays));
    match (need, mem_available()) {
        (None, _) => {
            return fail(format!(
                "grid --nx {} --ny {} is too large (its size overflows)",
                a.nx, a.ny
            ))
        }
        (Some(need), Some(avail)) if need > avail => {
            return fail(format!(
                "grid --nx {} --ny {} needs about {need} bytes but only {avail} bytes of \
                 memory are available; choose a smaller grid",
                a.nx, a.ny
            ))
        }
        _ => {}
    }
    let (px, py) = match (a.px, a.py) {
        (None, None) => process_grid(n, a.nx, a.ny),
        (Some(px), None) if px > 0 && n % px == 0 => (px, n / px),
        (None, Some(py)) if py > 0 && n % py == 0 => (n / py, py),
        (Some(px), Some(py)) if px.checked_mul(py) == Some(n) => (px, py),
        (px, py) => {
            let show = |v: Option<usize>| v.map_or("(any)".to_string(), |v| v.to_string());
            return fail(format!(
                "process grid --px {} --py {} does not fit {n} ranks (px × py must be {n})",
                show(px),
                show(py)
            ));
        }
    };
    if a.nx < px || a.ny < py {
        return fail(format!(
            "grid {} x {} is too small for the {px} x {py} process grid of {n} ranks: \
             every rank needs at least one column and one row (use --nx >= {px}, --ny >= {py})",
            a.nx, a.ny
        ));
    }
    let b = Block::of(me, px, py, a.nx, a.ny);
    let nb = Neighbours::of(&b, px, py);
    let mut solver = Solver::new(b, nb, a.nx, a.ny, a.test_rows);
    if root {
        println!(
            "jacobi: {} x {} interior points, {} iterations, {n} rank(s) as a {px} x {py} \
             process grid, progress {}",
            a.nx,
            a.ny,
            a.iters,
            comm.config().progress_mode().name()
        );
    }

    comm.barrier()?;
    let t0 = Instant::now();
    let mut last_res = f64::NAN;
    for it in 1..=a.iters {
        let report = it == a.iters || (a.report > 0 && it % a.report == 0);
        if report {
            let local = solver.step::<true>(comm)?;
            let mut v = [local];
            allreduce(comm, &mut v, f64::max)?;
            last_res = v[0];
            if root {
                println!("iter {it:6}: residual max |u_new - u_old| = {:.6e}", v[0]);
            }
        } else {
            solver.step::<false>(comm)?;
        }
    }
    comm.barrier()?;
    let solve = t0.elapsed().as_secs_f64();

    // Time spent waiting for halos: max and sum over ranks.
    let w = solver.wait.as_secs_f64();
    let mut wmax = [w];
    allreduce(comm, &mut wmax, f64::max)?;
    let mut wsum = [w];
    allreduce(comm, &mut wsum, |x, y| x + y)?;

    let lups = (a.nx * a.ny) as f64 * a.iters as f64;
    if root {
        println!(
            "solve: {solve:.4} s, {:.1} iterations/s, {:.1} MLUP/s; halo wait max {:.4} s, \
             mean {:.4} s per rank",
            a.iters as f64 / solve,
            lups / solve / 1e6,
            wmax[0],
            wsum[0] / n as f64
        );
    }

    let mut code = ExitCode::SUCCESS;
    let mut check_json = serde_json::Value::Null;
    if a.check {
        // Gather every block to rank 0.
        let mine = solver.block();
        if !root {
            comm.send(&mine, 0, TAG_GATHER)?;
        } else {
            let gw = a.nx + 2;
            let mut global = vec![0.0f64; gw * (a.ny + 2)];
            let mut place = |ob: &Block, data: &[f64]| {
                for j in 0..ob.ny {
                    let g = (ob.y0 + 1 + j) * gw + ob.x0 + 1;
                    global[g..g + ob.nx].copy_from_slice(&data[j * ob.nx..(j + 1) * ob.nx]);
                }
            };
            place(&b, &mine);
            for r in 1..n {
                let ob = Block::of(r, px, py, a.nx, a.ny);
                let mut data = vec![0.0f64; ob.nx * ob.ny];
                let st = comm.recv(&mut data, r as Rank, TAG_GATHER)?;
                if st.len != data.len() * 8 {
                    return Err(format!(
                        "rank {r} sent {} bytes, expected {}",
                        st.len,
                        data.len() * 8
                    )
                    .into());
                }
                place(&ob, &data);
            }
            let t = Instant::now();
            let (reference, sres) = serial(a.nx, a.ny, a.iters);
            let st = t.elapsed().as_secs_f64();
            let mut maxdiff = 0.0f64;
            let mut worst = (0, 0);
            for j in 1..=a.ny {
                for i in 1..=a.nx {
                    let d = (global[j * gw + i] - reference[j * gw + i]).abs();
                    // A NaN anywhere is a failure.
                    let d = if d.is_nan() { f64::INFINITY } else { d };
                    if d > maxdiff {
                        maxdiff = d;
                        worst = (i - 1, j - 1);
                    }
                }
            }
            let ok = maxdiff <= CHECK_TOL;
            println!(
                "check: serial solve {st:.4} s ({:.1} MLUP/s), serial residual {sres:.6e} \
                 (parallel {last_res:.6e})",
                lups / st / 1e6
            );
            println!(
                "check: max abs difference = {maxdiff:.3e} (at x={}, y={}; tolerance \
                 {CHECK_TOL:e}): {}",
                worst.0,
                worst.1,
                if ok { "PASSED" } else { "FAILED" }
            );
            if !ok {
                code = ExitCode::FAILURE;
            }
            check_json = serde_json::json!({
                "max_abs_diff": maxdiff,
                "passed": ok,
                "serial_s": st,
                "serial_residual": sres,
            });
        }
    }
    if root && a.json {
        let j = serde_json::json!({
            "nx": a.nx, "ny": a.ny, "iters": a.iters, "ranks": n, "px": px, "py": py,
            "progress": comm.config().progress_mode().name(),
            "solve_s": solve,
            "iters_per_s": a.iters as f64 / solve,
            "mlups": lups / solve / 1e6,
            "residual": last_res,
            "halo_wait_max_s": wmax[0],
            "halo_wait_mean_s": wsum[0] / n as f64,
            "check": check_json,
        });
        println!("json: {j}");
    }
    comm.barrier()?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids() {
        assert_eq!(process_grid(1, 8, 8), (1, 1));
        assert_eq!(process_grid(2, 8, 8), (2, 1));
        assert_eq!(process_grid(3, 8, 8), (3, 1));
        assert_eq!(process_grid(4, 8, 8), (2, 2));
        assert_eq!(process_grid(6, 8, 8), (3, 2));
        assert_eq!(process_grid(6, 8, 80), (2, 3));
        assert_eq!(process_grid(7, 8, 8), (7, 1));
    }

    #[test]
    fn splits_cover() {
        for n in 1..40 {
            for p in 1..=n {
                let mut next = 0;
                for k in 0..p {
                    let (o, l) = split(n, p, k);
                    assert_eq!(o, next);
                    assert!(l >= 1);
                    next = o + l;
                }
                assert_eq!(next, n);
            }
        }
    }
}

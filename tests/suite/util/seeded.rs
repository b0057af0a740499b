//! Seeded generators for the tests that draw their cases at random: the
//! same seed draws the same cases, and a hunt picks another seed (and more
//! cases) through the environment.

/// A small deterministic generator (xorshift64*), so the test needs no crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64's finaliser, so that nearby seeds start far apart;
        // xorshift must not start at zero.
        let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        state = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        state = (state ^ (state >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((state ^ (state >> 31)).max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A chunked encoding of `body`: chunks of 1 byte to 4 KiB, sizes in lower
/// or upper case hex, now and then a chunk extension, a last-chunk
/// extension or a trailer section.
pub fn random_chunked(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let largest = rng.pick(&[1, 7, 100, 700, 4096]);
        let len = rng.between(1, largest).min(body.len() - at);
        let size = if rng.chance(50) { format!("{len:x}") } else { format!("{len:X}") };
        out.extend_from_slice(size.as_bytes());
        if rng.chance(20) {
            out.extend_from_slice(rng.pick(&[&b";a=b"[..], b";n", b" ; q=\"x y\"", b";q=\"quoted;value\"", b";t=1;u"]));
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body[at..at + len]);
        out.extend_from_slice(b"\r\n");
        at += len;
    }
    out.extend_from_slice(if rng.chance(20) { b"0;last\r\n" } else { b"0\r\n" });
    if rng.chance(25) {
        out.extend_from_slice(b"Trailer-One: 1\r\nx-two:\tv v\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The number in environment variable `name` (decimal, or hex after `0x`), if set:
/// a seed or a count a hunt overrides.
pub fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text:?}: {e}")))
}

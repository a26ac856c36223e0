//! Seeded, repeatable randomness for the randomised tests (each test file reads its seed
//! and case count from the environment).

/// splitmix64: a small, seeded, repeatable generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// One of `names`.
    pub fn name(&mut self, names: &[&'static str]) -> &'static str {
        names[self.below(names.len())]
    }

    /// Up to `most` of `items`, in their order.
    pub fn some_of(&mut self, items: &[&str], most: usize) -> Vec<String> {
        let mut chosen: Vec<String> = items.iter().filter(|_| self.below(items.len()) < most).map(|s| s.to_string()).collect();
        chosen.truncate(most);
        chosen
    }
}

/// The number in environment variable `name`, else `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

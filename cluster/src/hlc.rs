//! Hybrid logical clocks (Kulkarni et al., 2014): a physical part in milliseconds, a logical
//! counter for events within one millisecond or when a peer's clock runs ahead, and the writer's
//! node id so that two writes never compare equal unless they are the same write.

use serde::{Deserialize, Serialize};

/// A timestamp. The field order is the comparison order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Hlc {
    pub millis: u64,
    pub counter: u32,
    pub node: u64,
}

impl std::fmt::Display for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}@{:016x}", self.millis, self.counter, self.node)
    }
}

impl std::str::FromStr for Hlc {
    type Err = String;

    /// Reads what `Display` writes: `millis.counter@node-hex`.
    fn from_str(s: &str) -> Result<Hlc, String> {
        let bad = || format!("{s:?} is not a version (millis.counter@node)");
        let (time, node) = s.split_once('@').ok_or_else(bad)?;
        let (millis, counter) = time.split_once('.').ok_or_else(bad)?;
        Ok(Hlc {
            millis: millis.parse().map_err(|_| bad())?,
            counter: counter.parse().map_err(|_| bad())?,
            node: u64::from_str_radix(node, 16).map_err(|_| bad())?,
        })
    }
}

/// One node's clock. The wall time is passed in so that tests and simulations drive it.
#[derive(Debug, Clone)]
pub struct Clock {
    node: u64,
    last: Hlc,
}

impl Clock {
    pub fn new(node: u64) -> Clock {
        Clock {
            node,
            last: Hlc {
                node,
                ..Hlc::default()
            },
        }
    }

    pub fn node(&self) -> u64 {
        self.node
    }

    /// A timestamp for a local event, greater than every timestamp this clock has issued or seen.
    pub fn tick(&mut self, wall_millis: u64) -> Hlc {
        self.last = if wall_millis > self.last.millis {
            Hlc {
                millis: wall_millis,
                counter: 0,
                node: self.node,
            }
        } else {
            Hlc {
                millis: self.last.millis,
                counter: self.last.counter.saturating_add(1),
                node: self.node,
            }
        };
        self.last
    }

    /// Takes a remote timestamp into account, so later local events order after it.
    pub fn observe(&mut self, remote: Hlc, wall_millis: u64) {
        let max = wall_millis.max(self.last.millis).max(remote.millis);
        let counter = if max == self.last.millis && max == remote.millis {
            self.last.counter.max(remote.counter)
        } else if max == self.last.millis {
            self.last.counter
        } else if max == remote.millis {
            remote.counter
        } else {
            0
        };
        self.last = Hlc {
            millis: max,
            counter,
            node: self.node,
        };
    }
}

/// Milliseconds since the Unix epoch from the system clock.
pub fn wall_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_when_the_wall_clock_goes_back() {
        let mut clock = Clock::new(1);
        let a = clock.tick(1000);
        let b = clock.tick(1000);
        let c = clock.tick(900);
        assert!(a < b && b < c);
        assert_eq!(c.millis, 1000);
    }

    #[test]
    fn a_remote_clock_ahead_pushes_local_events_after_it() {
        let mut clock = Clock::new(1);
        let remote = Hlc {
            millis: 5000,
            counter: 7,
            node: 2,
        };
        clock.observe(remote, 1000);
        let next = clock.tick(1000);
        assert!(next > remote, "{next} after {remote}");
    }

    #[test]
    fn display_round_trips() {
        let v = Hlc {
            millis: 1_795_460_891_496,
            counter: 3,
            node: 0x692e_1f3b_4b30_7632,
        };
        assert_eq!(v.to_string().parse::<Hlc>(), Ok(v));
        assert!("12@x".parse::<Hlc>().is_err());
    }

    #[test]
    fn equal_time_orders_by_node() {
        let a = Hlc {
            millis: 1,
            counter: 0,
            node: 1,
        };
        let b = Hlc { node: 2, ..a };
        assert!(a < b);
    }
}

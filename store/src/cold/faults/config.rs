//! `TIERD_COLD_FAULTS`: which faults to inject, and how often.

/// Rates are probabilities per request, in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    pub error_rate: f64,
    pub timeout_rate: f64,
    pub timeout_ms: u64,
    pub slow_rate: f64,
    pub slow_ms: u64,
    pub part_error_rate: f64,
    pub seed: u64,
}

impl Default for FaultConfig {
    /// No faults.
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            timeout_rate: 0.0,
            timeout_ms: 1000,
            slow_rate: 0.0,
            slow_ms: 100,
            part_error_rate: 0.0,
            seed: 0,
        }
    }
}

const KEYS: &str = "error_rate, timeout_rate, timeout_ms, slow_rate, slow_ms, part_error_rate, seed";

impl FaultConfig {
    /// Parses `key=value,...` (keys: see the module documentation); unset keys keep their defaults.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut config = FaultConfig::default();
        let mut seen = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| format!("cold fault {item:?}: expected key=value (keys: {KEYS})"))?;
            if seen.contains(&key) {
                return Err(format!("cold fault {key:?} is set twice"));
            }
            seen.push(key);
            let rate = |v: &str| match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(format!("cold fault {key}: {v:?} is not a probability between 0 and 1")),
            };
            let int = |v: &str| v.parse::<u64>().map_err(|_| format!("cold fault {key}: {v:?} is not a whole number"));
            match key {
                "error_rate" => config.error_rate = rate(value)?,
                "timeout_rate" => config.timeout_rate = rate(value)?,
                "slow_rate" => config.slow_rate = rate(value)?,
                "part_error_rate" => config.part_error_rate = rate(value)?,
                "timeout_ms" => config.timeout_ms = int(value)?,
                "slow_ms" => config.slow_ms = int(value)?,
                "seed" => config.seed = int(value)?,
                other => return Err(format!("unknown cold fault {other:?}; known: {KEYS}")),
            }
        }
        let sum = config.error_rate + config.timeout_rate + config.slow_rate;
        if sum > 1.0 {
            return Err(format!("cold faults: error_rate + timeout_rate + slow_rate is {sum}, more than 1"));
        }
        Ok(config)
    }

    /// Whether any fault can happen at all.
    pub fn is_active(&self) -> bool {
        self.error_rate + self.timeout_rate + self.slow_rate + self.part_error_rate > 0.0
    }
}

impl std::str::FromStr for FaultConfig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

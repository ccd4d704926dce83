//! Parsing of `TIERD_COLD_FAULTS` and the draws' rates and determinism.

use super::*;

#[test]
fn parses_the_documented_spec() {
    let c = FaultConfig::parse(
        "error_rate=0.1,timeout_rate=0.01,timeout_ms=200,slow_rate=0.05,slow_ms=50,part_error_rate=0.1,seed=7",
    )
    .unwrap();
    assert_eq!(
        c,
        FaultConfig {
            error_rate: 0.1,
            timeout_rate: 0.01,
            timeout_ms: 200,
            slow_rate: 0.05,
            slow_ms: 50,
            part_error_rate: 0.1,
            seed: 7
        }
    );
    assert!(c.is_active());
    assert!(!FaultConfig::parse("").unwrap().is_active());
    assert!(!FaultConfig::parse(" seed = 3 , ").unwrap().is_active());
}

#[test]
fn bad_specs_say_what_is_wrong() {
    for (spec, needle) in [
        ("error_rate", "key=value"),
        ("eror_rate=0.1", "unknown cold fault \"eror_rate\""),
        ("error_rate=1.5", "between 0 and 1"),
        ("error_rate=lots", "between 0 and 1"),
        ("timeout_ms=-1", "whole number"),
        ("seed=1,seed=2", "set twice"),
        ("error_rate=0.6,slow_rate=0.6", "more than 1"),
    ] {
        let e = FaultConfig::parse(spec).unwrap_err();
        assert!(e.contains(needle), "{spec}: {e}");
    }
}

#[test]
fn draws_follow_the_rates_and_the_seed() {
    let config = FaultConfig { error_rate: 0.1, timeout_rate: 0.2, slow_rate: 0.3, seed: 42, ..Default::default() };
    let injector = |config: FaultConfig| Injector { config, draws: AtomicU64::new(0), tally: Default::default() };
    let a = injector(config.clone());
    let n = 100_000;
    let faults: Vec<Fault> = (0..n).map(|_| a.draw("get", "k")).collect();
    let share = |f: Fault| faults.iter().filter(|&&x| x == f).count() as f64 / n as f64;
    assert!((share(Fault::Error) - 0.1).abs() < 0.01);
    assert!((share(Fault::Timeout) - 0.2).abs() < 0.01);
    assert!((share(Fault::Slow) - 0.3).abs() < 0.01);
    let b = injector(config.clone());
    assert!(faults.iter().take(1000).all(|&f| f == b.draw("get", "k")), "same seed, same faults");
    let c = injector(FaultConfig { seed: 43, ..config });
    assert!(faults.iter().take(1000).any(|&f| f != c.draw("get", "k")), "another seed, other faults");
}

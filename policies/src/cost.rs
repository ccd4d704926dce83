//! The cost model: what storing, moving and reading a segment costs, in US dollars, from a table of list prices.
//!
//! Pure arithmetic over [`Prices`], so that `tierd plan`, the tiering planner ("does this move pay for itself over
//! the horizon?") and `tierd simulate` all price the same way. Every price is configurable (`[cost]` in the daemon's
//! config); the defaults are public list prices of AWS us-east-1, each with its source below. They are what a
//! platform team sees on its bill, not what it negotiated: set your own.
//!
//! Units: storage is billed per GiB-month (AWS's "GB" is 2^30 bytes) over a 30-day month, requests per 1000,
//! retrieval and transfer per GiB. A month here is [`MONTH_MS`]; one-time costs (a move's requests and retrieval)
//! are compared with monthly savings through [`break_even_ms`].

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

/// Bytes per billed GiB.
pub const GIB: f64 = (1u64 << 30) as f64;

/// One billing month: 30 days, in milliseconds.
pub const MONTH_MS: i64 = 30 * 86_400_000;

/// Where bytes are billed. The hot tier is the node's local SSD; the cold tier is the object store, in the storage
/// class the cold objects are written with (`cold_gb_month`). `ColdInfrequent` is a colder class of the same store
/// (S3 Standard-IA, or Intelligent-Tiering's infrequent tier) that the `age-only` simulation scenario uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageClass {
    Hot,
    Cold,
    ColdInfrequent,
}

impl StorageClass {
    pub fn label(self) -> &'static str {
        match self {
            StorageClass::Hot => "hot",
            StorageClass::Cold => "cold",
            StorageClass::ColdInfrequent => "cold_infrequent",
        }
    }
}

/// List prices in USD. Defaults: AWS us-east-1 list prices as published on the AWS pricing pages
/// (<https://aws.amazon.com/ebs/pricing/>, <https://aws.amazon.com/s3/pricing/>), as of 2026-12; they were written
/// down from those pages' published tables, not fetched by tierd, so check them against your region and contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prices {
    /// Hot tier, per GiB-month of provisioned SSD. Default 0.08: EBS gp3.
    pub hot_gb_month: f64,
    /// Cold tier, per GiB-month. Default 0.023: S3 Standard, first 50 TB.
    pub cold_gb_month: f64,
    /// The colder class, per GiB-month. Default 0.0125: S3 Standard-IA (and Intelligent-Tiering's infrequent tier).
    pub cold_infrequent_gb_month: f64,
    /// PUT, COPY, POST (and each multipart part), per 1000 requests. Default 0.005 (S3 Standard).
    pub put_per_1000: f64,
    /// GET (each ranged read is one), per 1000 requests. Default 0.0004 (S3 Standard).
    pub get_per_1000: f64,
    /// LIST, per 1000 requests. Default 0.005 (S3 Standard).
    pub list_per_1000: f64,
    /// DELETE, per 1000 requests. Default 0: S3 does not charge for deletes.
    pub delete_per_1000: f64,
    /// Retrieval from the cold class, per GiB read. Default 0: S3 Standard has none.
    pub cold_retrieval_per_gb: f64,
    /// Retrieval from the colder class, per GiB read. Default 0.01: S3 Standard-IA.
    pub cold_infrequent_retrieval_per_gb: f64,
    /// Data transfer between the node and the object store, per GiB (either way). Default 0: same region.
    pub transfer_per_gb: f64,
    /// How tierd's cold tier uploads, not a price (so not a `[cost]` key: the daemon copies it from `[cold]`):
    /// objects at least this big go up in parts. Default 100 MiB, the cold tier's default.
    #[serde(skip)]
    pub multipart_threshold_bytes: u64,
    /// And the size of each part (one PUT each, plus one to start and one to complete the upload). Default 8 MiB,
    /// the cold tier's default.
    #[serde(skip)]
    pub upload_part_bytes: u64,
    /// Bytes per GET of a cold read, not a price either: cold reads fetch whole blocks (1 MiB,
    /// `BlockChecksums::DEFAULT_BLOCK_SIZE`).
    #[serde(skip)]
    pub read_block_bytes: u64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            hot_gb_month: 0.08,
            cold_gb_month: 0.023,
            cold_infrequent_gb_month: 0.0125,
            put_per_1000: 0.005,
            get_per_1000: 0.0004,
            list_per_1000: 0.005,
            delete_per_1000: 0.0,
            cold_retrieval_per_gb: 0.0,
            cold_infrequent_retrieval_per_gb: 0.01,
            transfer_per_gb: 0.0,
            multipart_threshold_bytes: 100 << 20,
            upload_part_bytes: 8 << 20,
            read_block_bytes: 1 << 20,
        }
    }
}

const POLICY: &str = "cost";

impl Prices {
    /// Every price is a finite number >= 0, and the request sizes are positive.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let prices = [
            ("hot_gb_month", self.hot_gb_month),
            ("cold_gb_month", self.cold_gb_month),
            ("cold_infrequent_gb_month", self.cold_infrequent_gb_month),
            ("put_per_1000", self.put_per_1000),
            ("get_per_1000", self.get_per_1000),
            ("list_per_1000", self.list_per_1000),
            ("delete_per_1000", self.delete_per_1000),
            ("cold_retrieval_per_gb", self.cold_retrieval_per_gb),
            ("cold_infrequent_retrieval_per_gb", self.cold_infrequent_retrieval_per_gb),
            ("transfer_per_gb", self.transfer_per_gb),
        ];
        for (field, price) in prices {
            PolicyError::require(price.is_finite() && price >= 0.0, POLICY, field, || {
                format!("is {price}: give a price in USD of zero or more")
            })?;
        }
        PolicyError::require(self.upload_part_bytes > 0, POLICY, "upload_part_bytes", || "is zero".to_string())?;
        PolicyError::require(self.read_block_bytes > 0, POLICY, "read_block_bytes", || "is zero".to_string())
    }

    /// USD per GiB-month in `class`.
    pub fn gb_month(&self, class: StorageClass) -> f64 {
        match class {
            StorageClass::Hot => self.hot_gb_month,
            StorageClass::Cold => self.cold_gb_month,
            StorageClass::ColdInfrequent => self.cold_infrequent_gb_month,
        }
    }

    /// Monthly cost of storing `bytes` in `class`.
    pub fn storage_monthly(&self, bytes: u64, class: StorageClass) -> f64 {
        bytes as f64 / GIB * self.gb_month(class)
    }

    /// Requests one upload of `bytes` takes, as the cold tier uploads: one PUT below the multipart threshold, else
    /// one per part plus the multipart upload's start and completion.
    pub fn upload_requests(&self, bytes: u64) -> u64 {
        if bytes < self.multipart_threshold_bytes {
            1
        } else {
            bytes.div_ceil(self.upload_part_bytes.max(1)) + 2
        }
    }

    /// GETs one read of `bytes` from the cold tier takes (whole blocks).
    pub fn read_requests(&self, bytes: u64) -> u64 {
        bytes.div_ceil(self.read_block_bytes.max(1)).max(1)
    }

    /// One-time cost of writing `bytes` to `class` of the object store (the hot tier's own writes are free).
    pub fn upload_cost(&self, bytes: u64, class: StorageClass) -> f64 {
        match class {
            StorageClass::Hot => 0.0,
            StorageClass::Cold | StorageClass::ColdInfrequent => {
                self.upload_requests(bytes) as f64 / 1000.0 * self.put_per_1000
                    + bytes as f64 / GIB * self.transfer_per_gb
            }
        }
    }

    /// Cost of reading `bytes` from `class`: GETs, retrieval and transfer; reads of the hot tier are free.
    pub fn read_cost(&self, bytes: u64, class: StorageClass) -> f64 {
        let retrieval = match class {
            StorageClass::Hot => return 0.0,
            StorageClass::Cold => self.cold_retrieval_per_gb,
            StorageClass::ColdInfrequent => self.cold_infrequent_retrieval_per_gb,
        };
        let gib = bytes as f64 / GIB;
        self.read_requests(bytes) as f64 / 1000.0 * self.get_per_1000 + gib * (retrieval + self.transfer_per_gb)
    }

    /// Cost of deleting one object from `class`.
    pub fn delete_cost(&self, class: StorageClass) -> f64 {
        match class {
            StorageClass::Hot => 0.0,
            StorageClass::Cold | StorageClass::ColdInfrequent => self.delete_per_1000 / 1000.0,
        }
    }

    /// One-time cost of moving a segment of `bytes` from `from` to `to`: read it (if it comes from the object
    /// store), write it (if it goes there), delete the old copy.
    pub fn move_cost(&self, bytes: u64, from: StorageClass, to: StorageClass) -> f64 {
        if from == to {
            return 0.0;
        }
        self.read_cost(bytes, from) + self.upload_cost(bytes, to) + self.delete_cost(from)
    }
}

/// How long until a one-time `cost` is paid back by a monthly saving of `monthly_saving`, in milliseconds; `None`
/// when it never is (no saving, or a loss).
pub fn break_even_ms(cost: f64, monthly_saving: f64) -> Option<i64> {
    if monthly_saving.is_nan() || monthly_saving <= 0.0 || !cost.is_finite() {
        return None;
    }
    if cost <= 0.0 {
        return Some(0);
    }
    let ms = cost / monthly_saving * MONTH_MS as f64;
    (ms < i64::MAX as f64).then_some(ms.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn hand_computed_storage_and_moves() {
        let p = Prices::default();
        // 100 GiB hot: 100 x 0.08 = $8.00 a month; cold: 100 x 0.023 = $2.30.
        assert!((p.storage_monthly(100 << 30, StorageClass::Hot) - 8.0).abs() < 1e-9);
        assert!((p.storage_monthly(100 << 30, StorageClass::Cold) - 2.3).abs() < 1e-9);
        // A 25 MiB segment goes up in one PUT (below the 100 MiB multipart threshold) = $0.000005; a 200 MiB one in
        // 25 parts of 8 MiB plus start and completion: 27 PUTs = $0.000135.
        assert_eq!(p.upload_requests(25 << 20), 1);
        assert!((p.move_cost(25 << 20, StorageClass::Hot, StorageClass::Cold) - 0.005 / 1000.0).abs() < 1e-12);
        assert_eq!(p.upload_requests(200 << 20), 27);
        assert!((p.upload_cost(200 << 20, StorageClass::Cold) - 27.0 * 0.005 / 1000.0).abs() < 1e-12);
        assert_eq!(p.upload_requests(100 << 20), 15, "at the threshold: multipart");
        // And back: 25 GETs of 1 MiB = $0.00001, no retrieval fee from S3 Standard.
        assert_eq!(p.read_requests(25 << 20), 25);
        assert!((p.move_cost(25 << 20, StorageClass::Cold, StorageClass::Hot) - 25.0 * 0.0004 / 1000.0).abs() < 1e-12);
        // From Standard-IA: plus $0.01 per GiB retrieved.
        let ia = p.move_cost(1 << 30, StorageClass::ColdInfrequent, StorageClass::Hot);
        assert!((ia - (1024.0 * 0.0004 / 1000.0 + 0.01)).abs() < 1e-12);
        assert_eq!(p.move_cost(1 << 30, StorageClass::Cold, StorageClass::Cold), 0.0);
    }

    #[test]
    fn break_even_is_cost_over_monthly_saving() {
        assert_eq!(break_even_ms(1.0, 2.0), Some(MONTH_MS / 2));
        assert_eq!(break_even_ms(0.0, 2.0), Some(0));
        assert_eq!(break_even_ms(1.0, 0.0), None);
        assert_eq!(break_even_ms(1.0, -1.0), None);
        assert_eq!(break_even_ms(f64::NAN, 1.0), None);
    }

    #[test]
    fn invalid_prices_name_the_field() {
        let p = Prices { cold_gb_month: -0.01, ..Prices::default() };
        assert!(p.validate().unwrap_err().to_string().contains("cold_gb_month"));
        let p = Prices { get_per_1000: f64::NAN, ..Prices::default() };
        assert!(p.validate().unwrap_err().to_string().contains("get_per_1000"));
        let p = Prices { upload_part_bytes: 0, ..Prices::default() };
        assert!(p.validate().unwrap_err().to_string().contains("upload_part_bytes"));
        Prices::default().validate().unwrap();
    }

    proptest! {
        #[test]
        fn costs_are_finite_non_negative_and_grow_with_size(a in 0u64..1 << 44, b in 0u64..1 << 44) {
            let p = Prices::default();
            let (small, big) = (a.min(b), a.max(b));
            for from in [StorageClass::Hot, StorageClass::Cold, StorageClass::ColdInfrequent] {
                for to in [StorageClass::Hot, StorageClass::Cold, StorageClass::ColdInfrequent] {
                    let (c1, c2) = (p.move_cost(small, from, to), p.move_cost(big, from, to));
                    prop_assert!(c1.is_finite() && c1 >= 0.0);
                    prop_assert!(c1 <= c2 + 1e-15);
                }
                prop_assert!(p.storage_monthly(small, from) <= p.storage_monthly(big, from));
            }
            // Every byte is uploaded: parts x part size covers the object.
            let parts = p.upload_requests(big);
            prop_assert!(parts == 1 || (parts - 2) * p.upload_part_bytes >= big);
        }
    }
}

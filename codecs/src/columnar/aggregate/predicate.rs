//! One condition over one batch: clears the rows of a mask whose value does not meet it, a column at a time.
//!
//! [`Filter::matches_value`] is the definition; this is the same decision taken on a column's typed values without
//! building a JSON value per row. A value in a typed column has a known JSON type, so each (column kind, operator,
//! operand type) reduces to a comparison of native values or to a constant:
//!
//! - numbers compare exactly as integers when both are integers (`i64` column against an `i64` or `u64` operand), as
//!   `f64` otherwise (an integer column against a float operand: `x as f64`; a float column: always);
//! - strings compare bytewise; booleans only for (in)equality; objects and arrays (JSON columns) only for
//!   (in)equality, as parsed values;
//! - a value of another JSON type than the operand is never equal and never ordered (`neq` holds, the rest do not);
//! - `exists` holds for every value a column holds (columns never hold `null`).
//!
//! Rows without a value in the column are decided by their `_props` value or, when the key is not there either, as a
//! missing property (only `neq` holds); those are decided one row at a time, and only for rows still in the mask.

use arrow_array::Array;
use serde_json::Value;

use super::values::{Source, Spill, Typed};
use crate::condition::{Filter, Op};

/// Clears `mask[row]` for every row whose value of `source` does not meet `filter`.
pub(super) fn apply(filter: &Filter, source: &Source<'_>, mask: &mut [bool]) -> Result<(), String> {
    match source {
        Source::Time(values) => integers(filter, values, mask),
        Source::Property { typed: None, spill } => {
            let rows: Vec<usize> = set_rows(mask).collect();
            decide_rows(filter, spill.as_ref(), &rows, mask)?;
        }
        Source::Property { typed: Some(typed), spill } => {
            // Rows in the mask without a value in the column: decided apart, after the column's values.
            let pending: Vec<usize> = match typed.nulls() {
                Some(nulls) => set_rows(mask).filter(|row| nulls.is_null(*row)).collect(),
                None => Vec::new(),
            };
            column(filter, typed, mask)?;
            decide_rows(filter, spill.as_ref(), &pending, mask)?;
        }
    }
    Ok(())
}

/// The rows set in `mask`.
fn set_rows(mask: &[bool]) -> impl Iterator<Item = usize> + '_ {
    mask.iter().enumerate().filter(|(_, m)| **m).map(|(row, _)| row)
}

/// Sets `mask[row]`, for each of `rows`, to whether the row's `_props` value (or, without one, a missing value)
/// meets `filter`.
fn decide_rows(filter: &Filter, spill: Option<&Spill<'_>>, rows: &[usize], mask: &mut [bool]) -> Result<(), String> {
    let missing = filter.matches_value(None);
    for &row in rows {
        mask[row] = match spill {
            Some(spill) => filter.matches_value(spill.value(row)?.as_ref()),
            None => missing,
        };
    }
    Ok(())
}

/// What a condition gives for a value of another JSON type than its operand (never equal, never ordered).
fn other_type(op: Op) -> bool {
    matches!(op, Op::Neq | Op::Exists)
}

/// Clears the whole mask when `holds` is false (every row's value gives the same answer).
fn constant(holds: bool, mask: &mut [bool]) {
    if !holds {
        mask.fill(false);
    }
}

/// The condition on every row of a typed column (rows without a value get an arbitrary answer: the caller decides
/// them afterwards).
fn column(filter: &Filter, typed: &Typed<'_>, mask: &mut [bool]) -> Result<(), String> {
    let op = filter.op;
    if op == Op::Exists {
        return Ok(());
    }
    match typed {
        Typed::Int64(array) => integers(filter, array.values(), mask),
        Typed::Float64(array) => {
            let values = array.values();
            if let Some(row) = (0..values.len()).find(|&r| !values[r].is_finite() && array.is_valid(r)) {
                return Err(format!("float {} is not a JSON number", values[row]));
            }
            match &filter.value {
                Value::Number(n) => by_op(op, values, |x| x, n.as_f64().unwrap_or(f64::NAN), mask),
                _ => constant(other_type(op), mask),
            }
        }
        Typed::Utf8(array) => strings(filter, |row| array.value(row).as_bytes(), mask),
        Typed::Dict { keys, values, .. } => {
            // Decided once per distinct value, then looked up per row.
            let mut per_value = vec![true; values.len()];
            strings(filter, |i| values.value(i).as_bytes(), &mut per_value);
            let nulls = typed.nulls();
            for (row, (m, &key)) in mask.iter_mut().zip(keys.values()).enumerate() {
                match usize::try_from(key).ok().and_then(|k| per_value.get(k)) {
                    Some(holds) => *m &= holds,
                    None if nulls.is_some_and(|n| n.is_null(row)) => {}
                    None => return Err(format!("dictionary key {key} is outside its dictionary of {}", values.len())),
                }
            }
        }
        Typed::Boolean(array) => match (&filter.value, op) {
            (Value::Bool(b), Op::Eq | Op::Neq) => {
                let want_equal = op == Op::Eq;
                for (m, x) in mask.iter_mut().zip(array.values().iter()) {
                    *m &= (x == *b) == want_equal;
                }
            }
            (Value::Bool(_), _) => constant(false, mask),
            _ => constant(other_type(op), mask),
        },
        Typed::Json(array) => match (&filter.value, op) {
            (Value::Array(_) | Value::Object(_), Op::Eq | Op::Neq) => {
                for (row, m) in mask.iter_mut().enumerate() {
                    if *m && array.is_valid(row) {
                        *m = filter.matches_value(Some(&super::values::json_value(array.value(row))?));
                    }
                }
            }
            _ => constant(other_type(op), mask),
        },
    }
    Ok(())
}

/// The condition on `i64` values (an `Int64` column, or `time`).
fn integers(filter: &Filter, values: &[i64], mask: &mut [bool]) {
    let op = filter.op;
    match &filter.value {
        _ if op == Op::Exists => {}
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(c), _) => by_op(op, values, |x| x, c, mask),
            // An operand above i64::MAX: every value is below it.
            (None, Some(_)) => constant(matches!(op, Op::Neq | Op::Lt | Op::Lte), mask),
            (None, None) => by_op(op, values, |x| x as f64, n.as_f64().unwrap_or(f64::NAN), mask),
        },
        _ => constant(other_type(op), mask),
    }
}

/// The condition on string values, `value(row)` for each row of the mask.
fn strings<'v>(filter: &Filter, value: impl Fn(usize) -> &'v [u8], mask: &mut [bool]) {
    let op = filter.op;
    let c = match &filter.value {
        _ if op == Op::Exists => return,
        Value::String(c) => c.as_bytes(),
        _ => return constant(other_type(op), mask),
    };
    let each = |mask: &mut [bool], holds: &dyn Fn(&[u8]) -> bool| {
        for (row, m) in mask.iter_mut().enumerate() {
            *m = *m && holds(value(row));
        }
    };
    match op {
        Op::Eq => each(mask, &|x| x == c),
        Op::Neq => each(mask, &|x| x != c),
        Op::Lt => each(mask, &|x| x < c),
        Op::Lte => each(mask, &|x| x <= c),
        Op::Gt => each(mask, &|x| x > c),
        Op::Gte => each(mask, &|x| x >= c),
        Op::Exists => {}
    }
}

/// `mask[row] &= map(values[row]) op c`, one loop per operator so that each compiles to a tight loop. With a NaN
/// operand (never parsed from JSON) every comparison is false and `neq` true, as `partial_cmp` decides.
fn by_op<T: Copy, U: PartialOrd + Copy>(op: Op, values: &[T], map: impl Fn(T) -> U, c: U, mask: &mut [bool]) {
    fn each<T: Copy>(values: &[T], mask: &mut [bool], holds: impl Fn(T) -> bool) {
        for (m, &x) in mask.iter_mut().zip(values) {
            *m &= holds(x);
        }
    }
    match op {
        Op::Eq => each(values, mask, |x| map(x) == c),
        Op::Neq => each(values, mask, |x| map(x) != c),
        Op::Lt => each(values, mask, |x| map(x) < c),
        Op::Lte => each(values, mask, |x| map(x) <= c),
        Op::Gt => each(values, mask, |x| map(x) > c),
        Op::Gte => each(values, mask, |x| map(x) >= c),
        Op::Exists => {}
    }
}

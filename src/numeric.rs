//! Scalar arithmetic the quantizers run on every weight.

/// `x.round()` — halves away from zero — without the call to libm's
/// `roundf` that `f32::round` compiles to for generic x86-64 (no SSE4.1):
/// that call was most of the time of quantizing BERT-base's 85 M weights.
/// Exact for every f32: below 2^23 the truncation and the difference are
/// exact, and from 2^23 on every float is already an integer (NaN and
/// infinities are returned as they are, as `round` does). Written with
/// selects, not branches, so that loops over it vectorize.
#[inline]
pub fn round_half_away(x: f32) -> f32 {
    let small = x.abs() < 8_388_608.0; // false for NaN
    let xs = if small { x } else { 0.0 };
    // SAFETY: |xs| < 2^23, so its truncation fits an i32.
    let t = unsafe { xs.to_int_unchecked::<i32>() } as f32;
    let f = xs - t;
    let up = if f >= 0.5 { 1.0 } else { 0.0 };
    let down = if f <= -0.5 { 1.0 } else { 0.0 };
    // round(-0.3) is -0.0: the truncation lost the sign of a zero result.
    let r = (t + up - down).copysign(x);
    if small {
        r
    } else {
        x
    }
}

/// `round(x / scale).clamp(-qmax, qmax) as i8`, stored as its byte:
/// symmetric int8 quantization of one value (NaN gives 0, as the `as` cast
/// does), branch-free so that loops over it vectorize.
///
/// Total for every input: `qmax` is taken within `[0, 127]` (a larger one
/// as 127, a NaN or negative one as 0), so the result always fits an i8
/// and no argument can make the cast below out of range or `clamp` panic.
/// For the `qmax` the quantizers pass (63 or 127) this is exactly
/// `round(x / scale).clamp(-qmax, qmax)`.
#[inline]
pub fn quantize_i8(x: f32, scale: f32, qmax: f32) -> u8 {
    // Loop-invariant in the quantizers' loops: hoisted out of them.
    let bound = if qmax > 0.0 { qmax.min(127.0) } else { 0.0 };
    let v = round_half_away(x / scale);
    let v = if v.is_nan() { 0.0 } else { v.clamp(-bound, bound) };
    // SAFETY: v is neither NaN nor infinite and within ±127 (clamped to
    // `bound` ≤ 127, or 0), so its truncation fits an i32.
    (unsafe { v.to_int_unchecked::<i32>() }) as i8 as u8
}

/// The f32 in four little-endian bytes (a weight read in place from its
/// raw storage).
#[inline]
pub fn le_f32(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::round_half_away;

    #[test]
    fn agrees_with_round_everywhere_it_matters() {
        let special = [
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.499_999_97,
            -0.499_999_97,
            126.5,
            -127.5,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            1e30,
            -1e30,
            f32::MIN_POSITIVE,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
        ];
        for x in special {
            assert_eq!(round_half_away(x).to_bits(), x.round().to_bits(), "{x}");
        }
        assert!(round_half_away(f32::NAN).is_nan());
        // Every float with an exponent up to 2^24 at a stride (all halves
        // and near-halves included) and random bit patterns.
        let mut bits = 0u32;
        while bits < 0x4b80_0000 {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                assert_eq!(round_half_away(x).to_bits(), x.round().to_bits(), "{x}");
            }
            bits += 97;
        }
        for (x, s, qmax) in [
            (1.0f32, 0.01f32, 127.0f32),
            (-3.0, 0.01, 127.0),
            (0.635, 0.01, 127.0),
            (f32::NAN, 1.0, 127.0),
            (2.5, 1.0, 63.0),
            (-0.5, 1.0, 127.0),
            (f32::INFINITY, 1.0, 127.0),
        ] {
            assert_eq!(
                super::quantize_i8(x, s, qmax),
                (x / s).round().clamp(-qmax, qmax) as i8 as u8,
                "{x} {s}"
            );
        }
        // Beyond the documented range: still an i8, never a panic. A qmax
        // past i32 (2^31) once reached an unchecked cast with values it
        // could not hold.
        for (x, qmax, want) in [
            (3e9f32, 1e10f32, 127i8),
            (-3e9, f32::INFINITY, -127),
            (f32::INFINITY, 4e9, 127),
            (200.0, 255.0, 127),
            (5.0, -1.0, 0),
            (5.0, f32::NAN, 0),
            (5.0, 0.0, 0),
        ] {
            assert_eq!(super::quantize_i8(x, 1.0, qmax) as i8, want, "{x} {qmax}");
        }
        let mut state = 0x9e37_79b9u32;
        for _ in 0..1_000_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let x = f32::from_bits(state);
            if !x.is_nan() {
                assert_eq!(round_half_away(x).to_bits(), x.round().to_bits(), "{x}");
            }
            let s = f32::from_bits(0x3a00_0000 | (state >> 9)); // scales near 5e-4
            let w = f32::from_bits(state.rotate_left(7)) * 1e-30;
            assert_eq!(
                super::quantize_i8(w, s, 127.0),
                (w / s).round().clamp(-127.0, 127.0) as i8 as u8
            );
        }
    }
}

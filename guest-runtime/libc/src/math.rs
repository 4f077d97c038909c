//! `math.h` functions under their C names, from the `libm` crate. `sqrt floor ceil fmod trunc
//! round fabs` are left out: the prebuilt `compiler_builtins` already exports them, and a second
//! definition would clash at link time.

use core::ffi::c_int;

macro_rules! unary {
    ($($name:ident),* $(,)?) => {$(
        #[doc = concat!("C `", stringify!($name), "`.")]
        #[no_mangle]
        pub extern "C" fn $name(x: f64) -> f64 {
            libm::$name(x)
        }
    )*};
}

unary!(
    exp, log, log10, log2, log1p, sin, cos, tan, asin, acos, atan, sinh, cosh, tanh, asinh, acosh,
    atanh
);

/// C `pow`.
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// C `atan2`.
#[no_mangle]
pub extern "C" fn atan2(y: f64, x: f64) -> f64 {
    libm::atan2(y, x)
}

/// C `ldexp`.
#[no_mangle]
pub extern "C" fn ldexp(x: f64, e: c_int) -> f64 {
    libm::ldexp(x, e)
}

/// C `frexp`.
///
/// # Safety
/// `e` must be writable.
#[no_mangle]
pub unsafe extern "C" fn frexp(x: f64, e: *mut c_int) -> f64 {
    let (m, exp) = libm::frexp(x);
    if !e.is_null() {
        // SAFETY: caller guarantee.
        unsafe { e.write(exp) };
    }
    m
}

/// C `modf`.
///
/// # Safety
/// `ip` must be writable.
#[no_mangle]
pub unsafe extern "C" fn modf(x: f64, ip: *mut f64) -> f64 {
    let (frac, int) = libm::modf(x);
    if !ip.is_null() {
        // SAFETY: caller guarantee.
        unsafe { ip.write(int) };
    }
    frac
}

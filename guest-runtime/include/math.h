/* math.h (twz libc shim): declarations; the functions come from Rust's compiler_builtins and the
 * libm crate, linked by twz-libc. */
#ifndef _TWZ_MATH_H
#define _TWZ_MATH_H
#include "_twz_libc.h"
TWZ_BEGIN_DECLS

#define HUGE_VAL __builtin_huge_val()
#define INFINITY __builtin_inff()
#define NAN __builtin_nanf("")
#define isnan(x) __builtin_isnan(x)
#define isinf(x) __builtin_isinf(x)
#define isfinite(x) __builtin_isfinite(x)
#define signbit(x) __builtin_signbit(x)
#define M_PI 3.14159265358979323846
#define M_E 2.7182818284590452354
#define M_LN2 0.69314718055994530942
#define M_LN10 2.30258509299404568402

double sqrt(double);
double floor(double);
double ceil(double);
double fmod(double, double);
double trunc(double);
double round(double);
double fabs(double);
double pow(double, double);
double exp(double);
double log(double);
double log10(double);
double log2(double);
double log1p(double);
double sin(double);
double cos(double);
double tan(double);
double asin(double);
double acos(double);
double atan(double);
double atan2(double, double);
double sinh(double);
double cosh(double);
double tanh(double);
double asinh(double);
double acosh(double);
double atanh(double);
double frexp(double, int *);
double ldexp(double, int);
double modf(double, double *);

TWZ_END_DECLS
#endif

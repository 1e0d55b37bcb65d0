# Included by _core.pyx: Gram mode's epoch sums from the packed means and centred
# moments of (X, y) (see gdcore/_precompute.py).

# Gram mode's Σ sᵢrᵢ² is a difference of terms the size of Σ sᵢỹᵢ² (its "magnitude" below),
# and carries their rounding: measured 1e-16 to 1e-15 of them (n up to 1e6, d up to 100).
# Below this share of the magnitude it would no longer agree with a pass over X to rtol
# 1e-10 (SPEC §7), so such an epoch takes its sums from a pass over X instead.
cdef double GRAM_SQUARES_MIN_SHARE = 1e-5
# The relative error of Σ sᵢrᵢ² that the rule above allows (1e-15 of the magnitude against
# 1e-5 of it): an epoch whose bound on the error from rounding the offset e (below) is not
# within it takes the pass over X too.
cdef double GRAM_SQUARES_RTOL = 1e-10


cdef inline bint gram_squares_precise(const double* sums, Py_ssize_t d, double magnitude,
                                      double offset_error) noexcept nogil:
    """Whether sums_from_gram's Σ sᵢrᵢ² is well above its rounding (False for a NaN): the
    terms' rounding (measured, a share of their magnitude) and the bound ``offset_error``
    on what the offset's rounding adds."""
    return (sums[d + SLOT_SQUARES]
            >= GRAM_SQUARES_MIN_SHARE * magnitude + offset_error / GRAM_SQUARES_RTOL)


cdef bint gram_epoch_sums(const double* gram, const floating* theta, Py_ssize_t d,
                          double* sums) noexcept nogil:
    """sums_from_gram into sums, and whether its Σ sᵢrᵢ² is precise (gram_squares_precise).
    The size of its terms is first bounded in O(d) (sums_from_gram); only an epoch that this
    bound leaves in doubt pays O(d²) more for their size itself (gram_terms_size).  When only
    the offset's rounding leaves it in doubt (a column of X with a large mean: e is then a
    small sum of large terms), e is formed again in long double (64 bits on x86-64, 113 on
    AArch64 Linux; where it is double, nothing changes) and the sums with it."""
    cdef double magnitude, offset_error, rest, terms
    magnitude = sums_from_gram(gram, theta, d, sums, &offset_error, &rest, False)
    if gram_squares_precise(sums, d, magnitude, offset_error):
        return True
    terms = gram_terms_size(gram, theta, d)
    if gram_squares_precise(sums, d, terms + rest, offset_error):
        return True
    if not gram_squares_precise(sums, d, terms + rest, 0.0):
        return False
    sums_from_gram(gram, theta, d, sums, &offset_error, &rest, True)
    return gram_squares_precise(sums, d, terms + rest, offset_error)


cdef double gram_terms_size(const double* gram, const floating* theta,
                            Py_ssize_t d) noexcept nogil:
    """Σⱼ|wⱼ|(Σₖ|Cⱼₖwₖ| + 2|cⱼ|): the size of the terms of wᵀ(Cw − c) − wᵀc = wᵀCw − 2wᵀc
    before they cancel, which their rounding is a share of.  |wᵀ(Cw − c)| after the cancellation is far
    smaller when w is large along a direction of little variance (nearly collinear columns
    fitted by large coefficients of opposite signs): measured against it, a loss 17% off the
    exact one passed for precise."""
    cdef Py_ssize_t width = d + 2, j, k
    cdef double size = 0.0, row_size
    for j in range(d):
        row_size = 2.0 * fabs(gram[j * width + d])
        for k in range(d):
            row_size += fabs(gram[j * width + k]) * fabs(theta[k])
        size += fabs(theta[j]) * row_size
    return size


cdef double sums_from_gram(const double* gram, const floating* theta, Py_ssize_t d,
                           double* sums, double* offset_error, double* rest,
                           bint extended) noexcept nogil:
    """The sums of a full pass, from the data's packed means and centred moments instead of X
    (see gdcore/_precompute.py): with S = Σ sᵢ, the stored means x̄, ȳ (rounded), centred
    about them C = Σ sᵢx̃ᵢx̃ᵢᵀ, c = Σ sᵢx̃ᵢỹᵢ, yy = Σ sᵢỹᵢ², and first moments mₓ = Σ sᵢx̃ᵢ,
    m_y = Σ sᵢỹᵢ (not 0: S times the means' rounding), each residual is rᵢ = x̃ᵢ·w − ỹᵢ + e
    with e = x̄·w + b − ȳ, so with g = mₓ·w − m_y = Σ sᵢ(x̃ᵢ·w − ỹᵢ),

        Σ sᵢrᵢxᵢ = (Cw − c) + e·mₓ + x̄·Σ sᵢrᵢ,   Σ sᵢrᵢ = g + Se,
        Σ sᵢrᵢ² = wᵀ(Cw − c) − wᵀc + yy + (2g + Se)·e.

    (Without g, with y ≈ 1e6 the loss read 2e-9 off: g ≈ S·ulp(ȳ)/2 and the term 2ge is then
    that share of Se², itself most of the loss while e is large against the noise.)
    Each epoch costs O(d²), whatever n is.  Returns a bound on the magnitude of the terms
    summed into Σ sᵢrᵢ², the scale of their rounding error: (a + √yy)² + |(2g + Se)·e| with
    a = Σⱼ|wⱼ|√Cⱼⱼ, which is at least Σⱼ|wⱼ|(Σₖ|Cⱼₖwₖ| + 2|cⱼ|) + yy (C is positive
    semi-definite, so |Cⱼₖ| ≤ √(CⱼⱼCₖₖ) and |cⱼ| ≤ √(Cⱼⱼ·yy)) at O(d) cost (see
    gram_epoch_sums); sets rest to yy + |(2g + Se)·e|, the terms besides those of
    gram_terms_size, and sets offset_error to a bound on the error
    that rounding e (in double, or in long double if ``extended``) adds to Σ sᵢrᵢ² (see
    gram_squares_precise)."""
    cdef Py_ssize_t width = d + 2, j, k
    cdef const double* means = gram + d + 1         # column d + 1: x̄ (rows < d), ȳ (row d)
    cdef const double* first = gram + (d + 1) * width   # row d + 1: mₓ (< d), m_y (d), S
    cdef double S = first[d + 1]
    cdef double offset, product, offset_rounding, g = -first[d], residual_sum, e_terms
    cdef double row_sum, w_u = 0.0, w_c = 0.0, spread = 0.0, squares
    cdef long double offset_long, product_long, rounding_long
    # Running error bounds (Higham, ASNA §3.3): each rounding in forming e is at most u times
    # its result (u = EPSILON / 2: EPSILON leaves room for the bound's own rounding and terms
    # of order u²).  A contracted multiply-add rounds less, within the same bound.
    if extended:
        offset_long = <long double>theta[d] - <long double>means[d * width]
        rounding_long = fabsl(offset_long)
        for j in range(d):
            product_long = <long double>means[j * width] * <long double>theta[j]
            offset_long += product_long
            rounding_long += fabsl(product_long) + fabsl(offset_long)
        offset = <double>offset_long
        offset_rounding = <double>(rounding_long * LDBL_EPSILON) + DBL_EPSILON * fabs(offset)
    else:
        offset = theta[d] - means[d * width]
        offset_rounding = fabs(offset)
        for j in range(d):
            product = means[j * width] * theta[j]
            offset += product
            offset_rounding += fabs(product) + fabs(offset)
        offset_rounding *= DBL_EPSILON
    for j in range(d):
        g += first[j] * theta[j]
    residual_sum = g + S * offset                      # Σ sᵢrᵢ
    for j in range(d):
        row_sum = 0.0
        for k in range(d):
            row_sum += gram[j * width + k] * theta[k]
        row_sum = row_sum - gram[j * width + d]              # (Cw − c)ⱼ
        w_u += theta[j] * row_sum
        spread += fabs(theta[j]) * sqrt(fabs(gram[j * width + j]))
        w_c += theta[j] * gram[j * width + d]
        sums[j] = row_sum + offset * first[j] + means[j * width] * residual_sum
    sums[d] = residual_sum
    e_terms = (g + residual_sum) * offset                # (2g + Se)·e
    squares = (w_u - w_c) + gram[d * width + d] + e_terms
    # Σ sᵢrᵢ² ≥ 0; the subtraction above can round an exact fit to a tiny negative number.
    # (Written so that a NaN, from inf − inf when θ overflows the sums, stays NaN: the loss
    # is then not finite, as the streaming pass finds it.)
    sums[d + SLOT_SQUARES] = 0.0 if squares < 0.0 else squares
    sums[d + SLOT_WEIGHT] = S
    # (2g + Se)·e moves by at most (2|g| + S(2|e| + δ))·δ when e is off by δ
    offset_error[0] = ((2.0 * fabs(g) + S * (2.0 * fabs(offset) + offset_rounding))
                       * offset_rounding)
    rest[0] = gram[d * width + d] + fabs(e_terms)
    spread += sqrt(fabs(gram[d * width + d]))
    return spread * spread + fabs(e_terms)



def gram_sums(const double[:, ::1] gram, const floating[::1] theta):
    """(sums, precise): the sums of a full pass (as block_sums_of returns them) from the packed
    (d+2)² means and centred moments of (X, y), what Gram mode computes each epoch (see
    sums_from_gram), and whether their Σ sᵢrᵢ² is well above its rounding (else an epoch
    takes the sums from a pass over the data; see gram_squares_precise)."""
    cdef Py_ssize_t d = theta.shape[0] - 1
    check_parameters(theta.shape[0], theta.shape[0], -1, 0)
    check_gram_shape(gram.shape[0], gram.shape[1], d)
    out = np.zeros(d + N_SLOTS, dtype=np.float64)
    cdef double[::1] sums = out
    return out, gram_epoch_sums(&gram[0, 0], &theta[0], d, &sums[0])

package sandbox

import (
	"encoding/binary"
	"math"
)

// appendKey appends the encoding of v[k] to buf. Equal values (after the
// key columns are cast to one type) encode to equal bytes, and the
// encoding of a row of several columns is unambiguous. A NULL encodes as
// one 0 byte, so NULLs group together (GROUP BY, DISTINCT); joins skip
// rows with a NULL key before encoding.
func appendKey(buf []byte, v *vec, k int) []byte {
	if v.isNull(k) {
		return append(buf, 0)
	}
	buf = append(buf, 1)
	switch v.t {
	case tInt, tDate, tTS:
		return binary.BigEndian.AppendUint64(buf, uint64(v.i[k]))
	case tFloat:
		return binary.BigEndian.AppendUint64(buf, math.Float64bits(normFloat(v.f[k])))
	case tDec:
		buf = binary.BigEndian.AppendUint64(buf, uint64(v.d[k].HighBits()))
		return binary.BigEndian.AppendUint64(buf, v.d[k].LowBits())
	case tStr, tBin:
		buf = binary.AppendUvarint(buf, uint64(len(v.s[k])))
		return append(buf, v.s[k]...)
	case tBool:
		if v.b[k] {
			return append(buf, 1)
		}
		return append(buf, 0)
	}
	return buf
}

// anyNull reports whether any of vs is NULL at row k.
func anyNull(vs []*vec, k int) bool {
	for _, v := range vs {
		if v.isNull(k) {
			return true
		}
	}
	return false
}

#include "textflag.h"

// func fold16(crc uint64, p []byte, keys *[2]uint64) (lo, hi uint64)
//
// X0 holds the running 16-byte block, X3 the two multipliers (keys[0] for the first quadword,
// keys[1] for the second). Each step: X0 = clmul(X0.lo, keys[0]) ^ clmul(X0.hi, keys[1]) ^ next.
TEXT ·fold16(SB), NOSPLIT, $0-56
	MOVQ crc+0(FP), AX
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), CX
	MOVQ keys+32(FP), DX
	MOVOU (DX), X3
	MOVOU (SI), X0
	MOVQ AX, X1
	PXOR X1, X0
	ADDQ $16, SI
	SUBQ $16, CX

loop:
	CMPQ CX, $16
	JB done
	MOVOA X0, X1
	PCLMULQDQ $0x00, X3, X0
	PCLMULQDQ $0x11, X3, X1
	PXOR X1, X0
	MOVOU (SI), X2
	PXOR X2, X0
	ADDQ $16, SI
	SUBQ $16, CX
	JMP loop

done:
	MOVQ X0, AX
	PEXTRQ $1, X0, BX
	MOVQ AX, lo+40(FP)
	MOVQ BX, hi+48(FP)
	RET

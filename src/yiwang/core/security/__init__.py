"""National cryptography (SM3, SM4), masking and data classification helpers."""

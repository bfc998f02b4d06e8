package store

// Certificate is a certificate record (Certificate_Add): the key is the
// account, the thumbprint algorithm and the thumbprint (lower-case hex),
// Doc is the service's record of it (the wire document plus the data the
// nodes install, which Get never shows), which the store never interprets.
type Certificate struct {
	Account             string
	ThumbprintAlgorithm string
	Thumbprint          string
	Doc                 []byte
}

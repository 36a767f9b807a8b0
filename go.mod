module github.com/nfqfw/nfqfw

go 1.26.8

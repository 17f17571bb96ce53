module exitgw/perf/dohload

go 1.24

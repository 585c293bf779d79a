module gopolicy

go 1.22

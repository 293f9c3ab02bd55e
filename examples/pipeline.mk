# A pipeline with make: export the account, then import a file, resuming until it is done.
#
#   make -f examples/pipeline.mk demo      # against a local sandbox with a tiny daily quota
#   make -f examples/pipeline.mk import INSIGHTLY_API_URL=… FILE=… MAPPING=…   # for real
#
# insightly-etl's exit codes tell the three outcomes apart:
#   0  done                          -> carry on
#   1  some rows rejected or failed  -> fix the data (see *.errors.csv), do not retry blindly
#   75 stopped for quota             -> run the same command again later (cron: tomorrow)

# a checkout's .venv, else wherever pip put insightly-etl
BIN      ?= $(if $(wildcard .venv/bin/insightly-etl),.venv/bin,$(patsubst %/,%,$(dir $(shell command -v insightly-etl))))
ETL      ?= $(BIN)/insightly-etl
FILE     ?= sample_data/contacts.csv
MAPPING  ?= mappings/contacts.yaml
RESULTS  ?= results
PORT     ?= 0

.PHONY: export import demo

export:
	$(ETL) export --out exports/ --incremental --quiet

# One attempt; 75 is not a failure of the pipeline, it is "come back later".
import:
	@$(ETL) import $(FILE) --mapping $(MAPPING) --results $(RESULTS) --checkpoint $(RESULTS)/import.checkpoint.sqlite --quiet; \
	code=$$?; \
	if [ $$code -eq 75 ]; then echo "quota spent: the rest waits for the next run"; exit 0; fi; \
	exit $$code

# The whole story in a minute: a sandbox whose day has 7 requests, an export, then the
# import re-run (with a "new day" in between) until every row is in.
# PORT=0 (the default): the sandbox takes a free port and says which in its first line.
demo:
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS)
	@$(ETL) sandbox --port $(PORT) --daily-quota 7 > $(RESULTS)/sandbox.log 2>&1 & echo $$! > $(RESULTS)/sandbox.pid; \
	for i in $$(seq 1 120); do \
	  url=$$(sed -n 's/^Insightly sandbox on \([^ ]*\) .*/\1/p' $(RESULTS)/sandbox.log); \
	  [ -n "$$url" ] && break; sleep 0.25; \
	done; \
	if [ -z "$$url" ]; then cat $(RESULTS)/sandbox.log; kill `cat $(RESULTS)/sandbox.pid`; exit 1; fi; \
	export INSIGHTLY_API_KEY=sandbox INSIGHTLY_API_URL=$$url; \
	status=1; \
	for day in 1 2 3 4 5; do \
	  echo "--- day $$day"; \
	  $(ETL) import $(FILE) --mapping $(MAPPING) --results $(RESULTS) --checkpoint $(RESULTS)/import.checkpoint.sqlite --quiet; \
	  status=$$?; \
	  if [ $$status -ne 75 ]; then break; fi; \
	  curl -s -X POST $${url%v3.1/}_sandbox/reset-quota > /dev/null; \
	done; \
	$(ETL) status $(RESULTS)/import.checkpoint.sqlite; \
	kill `cat $(RESULTS)/sandbox.pid`; \
	exit $$status

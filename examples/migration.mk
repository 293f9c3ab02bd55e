# A whole migration from another CRM's export, in dependency order: organisations, the people
# of each, deals (in their pipeline stage, open, won or lost with the reason, linked to their
# contact person), notes under the deals, activities as tasks. The files are Pipedrive's
# export format, with its mess: a byte-order mark, CRLF, stray spaces, a duplicated row,
# upper-case emails, thousands separators, day-first dates, its own pipeline and stage names.
#
#   make -f examples/migration.mk demo     # against a local sandbox, twice: the second run sends 0 writes
#   make -f examples/migration.mk migrate  # for real: INSIGHTLY_API_KEY and INSIGHTLY_API_URL/--pod set
#
# Each step stops the chain unless it exits 0: 1 means rows were rejected or failed (see
# $(RESULTS)/*.errors.csv; the next step would miss them), 75 means the day's quota is spent
# (run the same command again later: every import resumes where it stopped).

# a checkout's .venv, else wherever pip put insightly-etl
BIN     ?= $(if $(wildcard .venv/bin/insightly-etl),.venv/bin,$(patsubst %/,%,$(dir $(shell command -v insightly-etl))))
ETL     ?= $(BIN)/insightly-etl
# any python3 does: the statistics are read with the standard library only
PYTHON  ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
DATA    ?= sample_data/migration
RESULTS ?= results/migration
PORT    ?= 0
STEPS   := organizations persons deals notes activities

.PHONY: migrate demo

migrate:
	@mkdir -p $(RESULTS)
	@for step in $(STEPS); do \
	  $(ETL) import $(DATA)/$$step.csv --mapping $(DATA)/$$step.yaml --results $(RESULTS) \
	    --checkpoint $(RESULTS)/$$step.checkpoint.sqlite --quiet || exit $$?; \
	done

# writes the sandbox at $$url has received (POST, PUT, DELETE), from its admin statistics
WRITES = $(PYTHON) -c "import json, sys, urllib.request as u; s = json.load(u.urlopen(sys.argv[1] + '_sandbox/stats')); print(sum(r['count'] for r in s['requests'] if r['method'] in ('POST', 'PUT', 'DELETE')))" $${url%v3.1/}

# PORT=0 (the default): the sandbox takes a free port and says which in its first line
demo:
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS)
	@$(ETL) sandbox --port $(PORT) > $(RESULTS)/sandbox.log 2>&1 & echo $$! > $(RESULTS)/sandbox.pid; \
	for i in $$(seq 1 120); do \
	  url=$$(sed -n 's/^Insightly sandbox on \([^ ]*\) .*/\1/p' $(RESULTS)/sandbox.log); \
	  [ -n "$$url" ] && break; sleep 0.25; \
	done; \
	if [ -z "$$url" ]; then cat $(RESULTS)/sandbox.log; kill `cat $(RESULTS)/sandbox.pid`; exit 1; fi; \
	export INSIGHTLY_API_KEY=sandbox INSIGHTLY_API_URL=$$url; \
	echo "--- first run"; \
	$(MAKE) --no-print-directory -f examples/migration.mk migrate ETL=$(ETL) DATA=$(DATA) RESULTS=$(RESULTS); \
	status=$$?; first=$$($(WRITES)); \
	if [ $$status -eq 0 ]; then \
	  echo "--- second run (nothing changed: nothing to send)"; \
	  $(MAKE) --no-print-directory -f examples/migration.mk migrate ETL=$(ETL) DATA=$(DATA) RESULTS=$(RESULTS); \
	  status=$$?; second=$$($(WRITES)); \
	  echo "writes: first run $$first, second run $$((second - first))"; \
	  if [ $$second -ne $$first ]; then status=1; fi; \
	fi; \
	kill `cat $(RESULTS)/sandbox.pid`; \
	exit $$status

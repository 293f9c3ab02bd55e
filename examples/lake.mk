# A nightly data lake: the whole account, every night, as tables a data team reads where it
# works (Spark, Databricks, Trino, DuckDB, Polars), in object storage or a local folder.
#
#   make -f examples/lake.mk nightly LAKE=s3://acme-lake/insightly   # cron, with AWS_* set
#   make -f examples/lake.mk nightly FORMAT=parquet                  # the lake layout's
#                                                                    # _changes files instead
#   make -f examples/lake.mk demo                                    # a local sandbox, two nights
#
# The first night exports everything; each later night asks only for what changed since
# (--incremental), finds deletions (--detect-deletes) and adds one Delta version per table.
# Exit codes: 0 done; 75 the day's quota ran out (the next night goes on from the marks:
# nothing is lost, so the recipe does not fail); anything else fails the job.

# a checkout's .venv, else wherever pip put insightly-etl
BIN      ?= $(if $(wildcard .venv/bin/insightly-etl),.venv/bin,$(patsubst %/,%,$(dir $(shell command -v insightly-etl))))
ETL      ?= $(BIN)/insightly-etl
PYTHON   ?= $(BIN)/python
LAKE     ?= lake
FORMAT   ?= delta
RESULTS  ?= lake-demo
PORT     ?= 0

.PHONY: nightly demo

nightly:
	@$(ETL) export --layout lake --table-format $(FORMAT) --account-partition --out $(LAKE) \
	  --incremental --detect-deletes --quiet; \
	code=$$?; \
	if [ $$code -eq 75 ]; then echo "quota spent: the next night goes on from here"; exit 0; fi; \
	exit $$code

# Two nights against a sandbox: a colleague adds a contact and deletes another in between;
# then the table's history, as a reader of the lake sees it.
demo:
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS)
	@$(ETL) sandbox --port $(PORT) > $(RESULTS)/sandbox.log 2>&1 & echo $$! > $(RESULTS)/sandbox.pid; \
	for i in $$(seq 1 240); do \
	  url=$$(sed -n 's/^Insightly sandbox on \([^ ]*\) .*/\1/p' $(RESULTS)/sandbox.log); \
	  [ -n "$$url" ] && break; sleep 0.25; \
	done; \
	if [ -z "$$url" ]; then echo "the sandbox did not start:"; cat $(RESULTS)/sandbox.log; kill `cat $(RESULTS)/sandbox.pid`; exit 1; fi; \
	export INSIGHTLY_API_KEY=sandbox INSIGHTLY_API_URL=$$url; \
	echo "--- night 1"; \
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) nightly ETL=$(ETL) LAKE=$(RESULTS)/lake FORMAT=$(FORMAT) || { kill `cat $(RESULTS)/sandbox.pid`; exit 1; }; \
	curl -s -u sandbox: -H 'Content-Type: application/json' -d '{"FIRST_NAME":"Nightly","LAST_NAME":"New"}' $${url}Contacts > /dev/null; \
	gone=$$(curl -s -u sandbox: "$${url}Contacts?top=1" | sed -n 's/.*"CONTACT_ID": *\([0-9]*\).*/\1/p'); \
	curl -s -u sandbox: -X DELETE $${url}Contacts/$$gone > /dev/null; \
	sleep 1.1; \
	echo "--- night 2"; \
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) nightly ETL=$(ETL) LAKE=$(RESULTS)/lake FORMAT=$(FORMAT); \
	status=$$?; \
	kill `cat $(RESULTS)/sandbox.pid`; \
	[ $$status -eq 0 ] || exit $$status; \
	$(PYTHON) -c "import glob, sys; from deltalake import DeltaTable; \
	[print(t, [h['operation'] for h in DeltaTable(t).history()]) for t in sorted(glob.glob('$(RESULTS)/lake/account=*/contacts'))]" 2>/dev/null \
	  || find $(RESULTS)/lake -path '*_changes*' -name '*.parquet'

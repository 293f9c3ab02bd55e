# Nightly exports for an agency: every client account of accounts.yaml at once, each into its
# own folder, each paced on its own limits, and a report per account for the morning.
#
#   make -f examples/agency.mk nightly ACCOUNTS=agency.yaml OUT=/data/insightly   # cron
#   make -f examples/agency.mk demo       # three accounts of a local sandbox, two nights
#
# Exit codes: 0 done; 75 some account's quota ran out (its next night goes on from its marks:
# nothing is lost, so the recipe does not fail); anything else fails the job, after the other
# accounts have finished and the reports are written. OUT/_summary.json says which account
# failed and why (--summary-json), for whoever watches the job.

# a checkout's .venv, else wherever pip put insightly-etl
BIN      ?= $(if $(wildcard .venv/bin/insightly-etl),.venv/bin,$(patsubst %/,%,$(dir $(shell command -v insightly-etl))))
ETL      ?= $(BIN)/insightly-etl
ACCOUNTS ?= agency.yaml
OUT      ?= exports
REPORTS  ?= $(OUT)/reports
RESULTS  ?= agency-demo
PORT     ?= 0

.PHONY: nightly reports demo

nightly:
	@$(ETL) export --accounts $(ACCOUNTS) --out $(OUT) --incremental --detect-deletes --quiet \
	  --summary-json $(OUT)/_summary.json; \
	code=$$?; \
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) reports ETL=$(ETL) OUT=$(OUT) REPORTS=$(REPORTS) || exit $$?; \
	if [ $$code -eq 75 ]; then echo "quota spent for some account: its next night goes on from here"; exit 0; fi; \
	exit $$code

# one page per account that has an export (an account that failed before its first has none)
reports:
	@mkdir -p $(REPORTS); \
	for folder in $(OUT)/account=*; do \
	  [ -f "$$folder/_manifest.json" ] || continue; \
	  name=$${folder##*/account=}; \
	  $(ETL) report "$$folder" --html $(REPORTS)/$$name.html || exit $$?; \
	done

# Three accounts of one sandbox (a key, subdomain, rate and quota each), two nights; a
# colleague adds a contact at Acme in between.
demo:
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS)/keys
	@$(ETL) sandbox --port $(PORT) --api-key acme-key --subdomain acme \
	  --account globex=globex-key,rate=5 --account initech=initech-key,quota=5000 \
	  > $(RESULTS)/sandbox.log 2>&1 & echo $$! > $(RESULTS)/sandbox.pid; \
	for i in $$(seq 1 240); do \
	  url=$$(sed -n 's/^Insightly sandbox on \([^ ]*\) .*/\1/p' $(RESULTS)/sandbox.log); \
	  [ -n "$$url" ] && break; sleep 0.25; \
	done; \
	if [ -z "$$url" ]; then echo "the sandbox did not start:"; cat $(RESULTS)/sandbox.log; kill `cat $(RESULTS)/sandbox.pid`; exit 1; fi; \
	(umask 077; printf 'globex-key\n' > $(RESULTS)/keys/globex.key); \
	printf 'accounts:\n  - {name: acme, url: "%s", key_env: ACME_KEY, reserve: 100}\n  - {name: globex, url: "%s", key_file: keys/globex.key, rate: 5, objects: [contacts, organisations]}\n  - {name: initech, url: "%s", key_env: INITECH_KEY}\n' \
	  $$url $$url $$url > $(RESULTS)/accounts.yaml; \
	export ACME_KEY=acme-key INITECH_KEY=initech-key; \
	night() { $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) nightly ETL=$(ETL) \
	  ACCOUNTS=$(RESULTS)/accounts.yaml OUT=$(RESULTS)/exports; }; \
	echo "--- night 1"; night || { kill `cat $(RESULTS)/sandbox.pid`; exit 1; }; \
	curl -s -u acme-key: -H 'Content-Type: application/json' -d '{"FIRST_NAME":"Nightly","LAST_NAME":"New"}' $${url}Contacts > /dev/null; \
	sleep 1.1; \
	echo "--- night 2"; night; status=$$?; \
	kill `cat $(RESULTS)/sandbox.pid`; \
	[ $$status -eq 0 ] || exit $$status; \
	ls $(RESULTS)/exports/reports

{{/*
Render-time checks: every unsafe combination of values fails here, with a
message that says what to do instead. Included once, by the Deployment.
*/}}
{{- define "agenttier.validate" -}}
{{- $storage := .Values.optional.storage -}}
{{- /* Checked even when storage is off: the credentials are in values either way. */ -}}
{{- if $storage.dsn -}}
{{- fail "optional.storage.dsn is set inline, and credentials never go in values (the storage spec: \"Inject the DSN from a Kubernetes Secret\"). Put the DSN in a Secret, e.g. `kubectl create secret generic agenttier-storage --from-literal=dsn=...`, set optional.storage.dsnSecret.name (and optional.storage.dsnSecret.key, default \"dsn\"), and remove optional.storage.dsn." -}}
{{- end -}}
{{- if $storage.enabled -}}
{{- $driver := toString $storage.driver -}}
{{- if not (has $driver (list "sqlite" "postgres" "mysql")) -}}
{{- fail (printf "optional.storage.driver must be one of sqlite, postgres or mysql, not %q." $driver) -}}
{{- end -}}
{{- if eq $driver "sqlite" -}}
{{- $path := toString $storage.sqlite.path -}}
{{- if or (not (isAbs $path)) (ne $path (clean $path)) -}}
{{- fail (printf "optional.storage.sqlite.path must be a clean absolute file path such as /var/lib/agenttier/agenttier.db, not %q." $path) -}}
{{- end -}}
{{- $dir := dir $path -}}
{{- $taken := list "/" "/tmp" (include "agenttier.paths.sandboxes" .) (include "agenttier.paths.apiKeys" .) (include "agenttier.paths.templates" .) -}}
{{- if has $dir $taken -}}
{{- fail (printf "optional.storage.sqlite.path %q would mount the storage volume at %q, which the chart already uses (it uses %s); put the file in a directory of its own, such as /var/lib/agenttier/agenttier.db." $path $dir (join ", " (rest $taken))) -}}
{{- end -}}
{{- if gt (int .Values.router.replicas) 1 -}}
{{- fail (printf "router.replicas is %d, but SQLite storage takes exactly one Router: it is a single-writer store on a ReadWriteOnce volume. Set router.replicas=1, or for more replicas use an external Postgres database: --set optional.storage.driver=postgres,optional.storage.dsnSecret.name=<Secret holding the DSN>." (int .Values.router.replicas)) -}}
{{- end -}}
{{- else -}}
{{- if not $storage.dsnSecret.name -}}
{{- fail (printf "optional.storage.driver=%s needs optional.storage.dsnSecret.name: the name of an existing Secret whose key optional.storage.dsnSecret.key (now %q) holds the DSN, e.g. `kubectl create secret generic agenttier-storage --from-literal=%s=<DSN>` then --set optional.storage.dsnSecret.name=agenttier-storage." $driver (toString $storage.dsnSecret.key) (toString $storage.dsnSecret.key)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Render-time checks: every unsafe combination of values fails here, with a
message that says what to do instead. Included once, by the Deployment.
*/}}
{{- define "agenttier.validate" -}}
{{- $storage := .Values.optional.storage -}}
{{- $router := .Values.router -}}
{{- $plane := toString $router.controlPlane -}}
{{- $mode := toString $router.mode -}}
{{- $replicas := int $router.replicas -}}
{{- if not (has $plane (list "kubernetes" "local")) -}}
{{- fail (printf "router.controlPlane must be kubernetes (sandboxes are AgentTier Sandbox resources of this cluster) or local (sandboxes run as processes in the Router's pod, for evaluation), not %q." $plane) -}}
{{- end -}}
{{- if not (has $mode (list "serve" "watch")) -}}
{{- fail (printf "router.mode must be serve (the Router's REST API) or watch (a headless recorder of the cluster's history), not %q." $mode) -}}
{{- end -}}
{{- if and (eq $mode "watch") (ne $plane "kubernetes") -}}
{{- fail "router.mode=watch records a cluster's Sandboxes, so it needs router.controlPlane=kubernetes (a local control plane has nothing to watch)." -}}
{{- end -}}
{{- if and (eq $mode "watch") (not $storage.enabled) -}}
{{- fail "router.mode=watch records history, so it needs storage: set optional.storage.enabled=true (SQLite, one replica), or for a shared database optional.storage.driver=postgres (or mysql) with optional.storage.dsnSecret.name=<Secret holding the DSN>." -}}
{{- end -}}
{{- if $router.namespace -}}
{{- if ne $plane "kubernetes" -}}
{{- fail (printf "router.namespace=%s restricts a kubernetes control plane to one namespace; with router.controlPlane=local there is none to restrict. Unset router.namespace, or set router.controlPlane=kubernetes." (toString $router.namespace)) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" (toString $router.namespace)) -}}
{{- fail (printf "router.namespace must be a namespace name (lower-case letters, digits and '-', at most 63), not %q." (toString $router.namespace)) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $plane "local") (gt $replicas 1) -}}
{{- fail (printf "router.replicas is %d, but router.controlPlane=local runs every sandbox as a process in one Router pod, which another replica cannot see. Set router.replicas=1, or for more replicas use router.controlPlane=kubernetes (with PostgreSQL or MySQL storage, or none)." $replicas) -}}
{{- end -}}
{{- if and (eq $plane "kubernetes") $router.templates -}}
{{- fail "router.templates are the local control plane's templates; with router.controlPlane=kubernetes the Router reads the cluster's ClusterSandboxTemplates and SandboxTemplates instead. Create those (kubectl apply), and unset router.templates." -}}
{{- end -}}
{{- if and (eq $plane "kubernetes") .Values.rbac.create (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) -}}
{{- fail "rbac.create=true with serviceAccount.create=false would grant the Router's RBAC to the namespace's \"default\" ServiceAccount. Name the existing account in serviceAccount.name, or set serviceAccount.create=true." -}}
{{- end -}}
{{- $interval := $router.costs.interval -}}
{{- if and (not (kindIs "invalid" $interval)) (lt (float64 $interval) 1.0) -}}
{{- fail (printf "router.costs.interval is %v seconds; a cost bucket is at least 1 second (empty: the Router's 60)." $interval) -}}
{{- end -}}
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

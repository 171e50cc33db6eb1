"""What serves Pulumi: the resource providers over the open engine (:mod:`pulumi_sconify.engine`)."""

// An SV `input var` driven by a process.
module top_module(input var logic [7:0] a, input [7:0] b, output [7:0] y);
  always @* a = 8'hxx;
  assign y = 0;
endmodule
